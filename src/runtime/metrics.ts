import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of the processor runtime; one set per registry. */
export interface RuntimeMetrics {
  registry: Registry;
  recordsApplied: Counter<'partition'>;
  recordsSkipped: Counter<'partition' | 'reason'>;
  appliedLsn: Gauge<'partition'>;
  snapshots: Counter<'partition' | 'status'>;
  snapshotBytes: Counter<'partition' | 'kind'>;
  snapshotStoreMisses: Counter<'partition' | 'store'>;
  syncPause: Histogram<'partition'>;
  coordinatorReports: Counter<'partition' | 'outcome'>;
  ownershipChanges: Counter<'change'>;
  partitionLag: Gauge<'partition'>;
  handoffSeconds: Histogram<string>;
}

export function createRuntimeMetrics(registry = new Registry()): RuntimeMetrics {
  return {
    registry,
    recordsApplied: new Counter({ name: 'cairn_records_applied_total', help: 'Records applied to partition state', labelNames: ['partition'], registers: [registry] }),
    recordsSkipped: new Counter({ name: 'cairn_records_skipped_total', help: 'Records skipped under onBadRecord: skip (reason: decode or processor)', labelNames: ['partition', 'reason'], registers: [registry] }),
    appliedLsn: new Gauge({ name: 'cairn_applied_lsn', help: 'Last LSN committed to partition state', labelNames: ['partition'], registers: [registry] }),
    snapshots: new Counter({ name: 'cairn_snapshots_total', help: 'Snapshots by outcome (published, superseded, failed)', labelNames: ['partition', 'status'], registers: [registry] }),
    snapshotBytes: new Counter({ name: 'cairn_snapshot_bytes_total', help: 'Snapshot bytes uploaded from this worker or copied server-side', labelNames: ['partition', 'kind'], registers: [registry] }),
    snapshotStoreMisses: new Counter({
      name: 'cairn_snapshot_store_misses_total',
      help: 'Snapshots published in some stores of their class but not in this one (caught up by the next checkpoint or cairn replicate)',
      labelNames: ['partition', 'store'],
      registers: [registry],
    }),
    syncPause: new Histogram({ name: 'cairn_snapshot_sync_pause_seconds', help: 'Time the apply loop was paused to capture a consistent file set', labelNames: ['partition'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] }),
    ownershipChanges: new Counter({ name: 'cairn_partition_ownership_changes_total', help: 'Partitions this worker gained, lost to a rebalance, or handed back when stopping (group mode)', labelNames: ['change'], registers: [registry] }),
    partitionLag: new Gauge({ name: 'cairn_partition_lag', help: 'Offsets still to apply: log end - applied LSN - 1 (group mode, updated with each offset commit)', labelNames: ['partition'], registers: [registry] }),
    handoffSeconds: new Histogram({ name: 'cairn_partition_handoff_seconds', help: 'From being assigned a partition to running it: waiting for the previous owner, then claiming (group mode)', buckets: [0.05, 0.1, 0.5, 1, 5, 10, 30, 60], registers: [registry] }),
    coordinatorReports: new Counter({ name: 'cairn_coordinator_reports_total', help: 'Reports sent to the coordinator by outcome (ok, failed)', labelNames: ['partition', 'outcome'], registers: [registry] }),
  };
}
