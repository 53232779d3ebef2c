import { join } from 'node:path';
import { isCairnError, toCairnError, type CairnError } from '../core/errors.js';
import { newSnapshotId } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import type { Log } from '../log/types.js';
import type { Ownership } from '../snapshots/ownership.js';
import type { CheckpointResult, SnapshotAccess } from '../snapshots/repository.js';
import type { PartitionState } from '../state/partition-state.js';
import type { RuntimeMetrics } from './metrics.js';
import type { StopReason } from './run-summary.js';
import { SnapshotPolicy } from './snapshot-policy.js';

export interface SnapshotRequestOutcome {
  status: 'done' | 'declined' | 'failed';
  reason?: string;
  /** The LSN of the snapshot that satisfies the request. */
  lsn?: number;
}

export interface SnapshotScheduleOptions {
  partition: string;
  logPartition: string;
  node: string;
  /** Captures are staged under `{stateDir}/.staging` (bootstrap.ts removes what a crash leaves there). */
  stateDir: string;
  repository: SnapshotAccess;
  log: Log;
  logger: Logger;
  metrics?: RuntimeMetrics;
  ownership?: Ownership;
  everyRecords: number;
  // The processor's side.
  /** The LSN committed to local state. */
  appliedLsn: () => number;
  /** The LSN applied, its batch possibly still committing: what the policy counts. */
  aheadLsn: () => number;
  /** Waits for the batch in flight to commit; false when that found local state damaged. */
  settleCommits: () => Promise<boolean>;
  /** The open state once every handed-over batch committed (rethrowing a failed commit). */
  settledState: () => Promise<PartitionState>;
  /** Told why a snapshot failed: damaged local state (a capture's table check) is rebuilt before the next batch. */
  noteDamage: (err: unknown) => void;
}

/**
 * When a processor snapshots, and how: by records applied (snapshot-policy.ts), on request
 * from the coordinator, on demand (checkpoint), and at the end of a run. At most one is in
 * flight. Only the synchronous capture pauses the apply loop; the upload overlaps applying,
 * and a failed upload is logged and retried later (the policy backs off), so a store outage
 * never stops the loop. A publish that finds the partition claimed by another worker
 * (FENCED) is kept in `fenced`: the loop stops at its next turn.
 */
export class SnapshotSchedule {
  private readonly policy: SnapshotPolicy;
  private inFlight: Promise<void> | undefined;
  private lastLsn = -1;
  private readonly finished: CheckpointResult[] = [];
  private requested: { minLsn: number; settle: (o: SnapshotRequestOutcome) => void } | undefined;
  private fencedBy: CairnError | undefined;

  constructor(private readonly o: SnapshotScheduleOptions) {
    this.policy = new SnapshotPolicy(o.everyRecords);
  }

  /** LSN of the last snapshot published or restored from; -1 when none. */
  get snapshotLsn(): number {
    return this.lastLsn;
  }

  /** Every snapshot that settled so far (published, superseded, …), oldest first; a copy. */
  get results(): CheckpointResult[] {
    return [...this.finished];
  }

  /** Set once a publish found the partition claimed by another worker. */
  get fenced(): CairnError | undefined {
    return this.fencedBy;
  }

  /**
   * State was opened or replaced, from the snapshot at `snapshotLsn` (-1: none). `coveredLsn`
   * is what the policy counts from: for warm local state its applied LSN (snapshot-policy.ts).
   */
  reset(snapshotLsn: number, coveredLsn = snapshotLsn): void {
    this.lastLsn = snapshotLsn;
    this.policy.reset(coveredLsn);
  }

  /**
   * A snapshot asked for from outside (the coordinator), at or after `minLsn`. A processor
   * behind `minLsn` declines at once (another replica, or this one later, must take it);
   * one whose last snapshot already covers it answers with that snapshot. Otherwise the
   * apply loop takes one at its next turn (serveRequest), never while another is uploading.
   */
  request(minLsn: number): Promise<SnapshotRequestOutcome> {
    const { partition, logger } = this.o;
    const appliedLsn = this.o.appliedLsn();
    if (this.lastLsn >= minLsn) return Promise.resolve({ status: 'done', lsn: this.lastLsn, reason: `snapshot at LSN ${this.lastLsn} already covers it` });
    if (appliedLsn < minLsn) {
      const reason = `applied LSN ${appliedLsn} is behind minLsn ${minLsn}`;
      logger.warn({ partition, minLsn, appliedLsn }, 'snapshot request declined: behind its minimum LSN');
      return Promise.resolve({ status: 'declined', reason });
    }
    this.requested?.settle({ status: 'failed', reason: 'superseded by a newer request' });
    return new Promise((settle) => {
      this.requested = { minLsn, settle };
    });
  }

  /** At the loop's turn: takes the requested snapshot, if one waits and none is uploading. Only the capture pauses the loop; the request settles when the upload does. */
  async serveRequest(): Promise<void> {
    const request = this.requested;
    if (!request || this.inFlight) return;
    this.requested = undefined;
    // A snapshot by records applied may have covered it since it was asked for.
    if (this.lastLsn >= request.minLsn) return request.settle({ status: 'done', lsn: this.lastLsn });
    const failed = (err: unknown) => request.settle({ status: 'failed', reason: toCairnError(err).message });
    try {
      const { result } = await this.start();
      result.then((r) => request.settle({ status: 'done', lsn: r.metadata.lsn, ...(r.status === 'published' ? {} : { reason: `snapshot ${r.status}` }) }), failed);
    } catch (err) {
      failed(err);
    }
  }

  /** Starts a snapshot if the policy says one is due; asked after every batch and after an empty read too. */
  async maybeTake(): Promise<void> {
    if (!this.inFlight && this.policy.due(this.o.aheadLsn(), Date.now()) && (await this.o.settleCommits())) await this.start();
  }

  /** Takes a snapshot now and waits for it (sync phase, then upload). */
  async checkpoint(): Promise<CheckpointResult> {
    await this.drain();
    return (await this.start()).result;
  }

  /** Waits until no snapshot is in flight. */
  async drain(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  /**
   * The end of a run, its last batch committed: the snapshot in flight settles. A run that
   * ends by itself (not on a signal, which must stop promptly) may end while a snapshot
   * uploads, with the next one due: taking it keeps the newest snapshot less than
   * everyRecords behind, as while running. `checkpointOnExit` then takes a final one if
   * anything was applied since. A request still waiting fails: nobody will take it.
   */
  async finishRun(stoppedBy: StopReason, checkpointOnExit: boolean): Promise<void> {
    await this.drain();
    if (stoppedBy !== 'signal') {
      await this.maybeTake();
      await this.drain();
    }
    if (checkpointOnExit && this.o.appliedLsn() > this.lastLsn) await this.checkpoint();
    this.requested?.settle({ status: 'failed', reason: `processor stopped (${stoppedBy})` });
    this.requested = undefined;
  }

  /**
   * Sync phase inline (the loop is paused while we await it); the async phase runs in the
   * background. `result` rejects on failure for callers who wait; the background path logs
   * the failure and backs off, so a store outage never stops the apply loop.
   */
  private async start(): Promise<{ result: Promise<CheckpointResult> }> {
    const state = await this.o.settledState();
    const { repository, partition, node, log, logPartition, logger, metrics, ownership } = this.o;
    const staging = join(this.o.stateDir, '.staging', `${partition}-${newSnapshotId()}`);
    const capture = await state.capture(staging);
    metrics?.syncPause.observe({ partition }, capture.syncPauseMs / 1000);
    const result = repository
      .checkpoint(capture, { partition, node, source: log.source(logPartition), logger, ...(ownership ? { beforePublish: ownership.check } : {}) })
      .finally(() => capture.release().catch(() => undefined));
    const settled = result.then(
      (r) => {
        this.finished.push(r);
        if (r.status === 'published') this.lastLsn = r.metadata.lsn;
        this.policy.covered(r.status === 'superseded' ? Math.max(r.metadata.lsn, r.currentLsn) : r.metadata.lsn);
        metrics?.snapshots.inc({ partition, status: r.status });
        for (const o of r.stores ?? []) if (o.status === 'failed') metrics?.snapshotStoreMisses.inc({ partition, store: o.store });
        metrics?.snapshotBytes.inc({ partition, kind: 'uploaded' }, r.metadata.stats.uploadedBytes);
        metrics?.snapshotBytes.inc({ partition, kind: 'copied' }, r.metadata.stats.copiedBytes);
        logger.info({ partition, status: r.status, lsn: r.metadata.lsn, snapshotId: r.metadata.snapshotId, stats: r.metadata.stats }, 'snapshot finished');
      },
      (err: unknown) => {
        this.o.noteDamage(err);
        if (isCairnError(err, 'FENCED')) this.fencedBy = err; // the loop stops at its next turn
        this.policy.failed(Date.now());
        metrics?.snapshots.inc({ partition, status: 'failed' });
        logger.error({ partition, err: toCairnError(err) }, 'snapshot failed; will retry');
      },
    );
    this.inFlight = settled.finally(() => {
      this.inFlight = undefined;
    });
    return { result };
  }
}
