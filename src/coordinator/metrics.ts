import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The coordinator's Prometheus metrics. Labels are bounded: partitions are the ones the log
 * or the store holds, nodes at most 64 per partition (evicted ones are removed), and routes
 * are route patterns, never raw URLs, so no request can mint a new series.
 */
export interface CoordinatorMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  trims: Counter<'partition' | 'mode'>;
  trimErrors: Counter<'partition'>;
  snapshotRequests: Counter<'partition'>;
  trimLag: Gauge<'partition'>;
  archivedLsn: Gauge<'partition'>;
  logStart: Gauge<'partition'>;
  logEnd: Gauge<'partition'>;
  appliedLsn: Gauge<'partition' | 'node'>;
}

export function createCoordinatorMetrics(registry = new Registry()): CoordinatorMetrics {
  collectDefaultMetrics({ register: registry, prefix: 'cairn_coordinator_' });
  const opts = { registers: [registry] };
  return {
    registry,
    requests: new Counter({ name: 'cairn_coordinator_http_requests_total', help: 'HTTP requests by method, route pattern and status', labelNames: ['method', 'route', 'status'], ...opts }),
    trims: new Counter({ name: 'cairn_coordinator_trims_total', help: 'Trims that moved the log start (mode: automatic, manual; delegated when a processor performs it)', labelNames: ['partition', 'mode'], ...opts }),
    trimErrors: new Counter({ name: 'cairn_coordinator_trim_errors_total', help: 'Trim attempts that failed', labelNames: ['partition'], ...opts }),
    snapshotRequests: new Counter({ name: 'cairn_coordinator_snapshot_requests_total', help: 'Snapshot requests accepted', labelNames: ['partition'], ...opts }),
    trimLag: new Gauge({ name: 'cairn_coordinator_trim_lag_records', help: 'Offsets already archived but still in the log (safe trim point minus log start)', labelNames: ['partition'], ...opts }),
    archivedLsn: new Gauge({ name: 'cairn_coordinator_archived_lsn', help: 'Archived LSN read from the store (-1: none)', labelNames: ['partition'], ...opts }),
    logStart: new Gauge({ name: 'cairn_coordinator_log_start_lsn', help: 'First retained LSN of the log (the trim point)', labelNames: ['partition'], ...opts }),
    logEnd: new Gauge({ name: 'cairn_coordinator_log_end_lsn', help: 'Last LSN + 1 of the log', labelNames: ['partition'], ...opts }),
    appliedLsn: new Gauge({ name: 'cairn_coordinator_applied_lsn', help: 'Applied LSN each replica last reported', labelNames: ['partition', 'node'], ...opts }),
  };
}
