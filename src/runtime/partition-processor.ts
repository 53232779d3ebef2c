import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { CairnError, isCairnError, toCairnError } from '../core/errors.js';
import { newSnapshotId } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import { validatePartition } from '../core/names.js';
import type { Log, LogRecord } from '../log/types.js';
import type { CheckpointResult, SnapshotRepository } from '../snapshots/repository.js';
import { isLocalCorruption } from '../state/integrity.js';
import { PartitionState } from '../state/partition-state.js';
import { BatchWrites } from './batch.js';
import { openOrBootstrap, removeLeftovers, replaceLocalState, type OpenedState } from './bootstrap.js';
import type { Processor } from './processor-module.js';
import type { RuntimeMetrics } from './metrics.js';
import { CoordinatorReporter, type CoordinatorLink } from './coordinator-reporter.js';

export interface PartitionProcessorOptions {
  partition: string;
  /** The log partition records come from; default `partition` (a fork replays its parent's). */
  logPartition?: string;
  processor: Processor;
  log: Log;
  repository: SnapshotRepository;
  /** Root state folder; this partition's LevelDB lives in `{stateDir}/{partition}`. */
  stateDir: string;
  node: string;
  /** Take a snapshot after this many records applied since the last one; 0 = never. */
  everyRecords: number;
  batchSize: number;
  onBadRecord: 'stop' | 'skip';
  logger: Logger;
  metrics?: RuntimeMetrics;
  /** Report progress to this coordinator while running, and follow its commands. */
  coordinator?: CoordinatorLink;
  onBootstrapProgress?: (done: number, total: number) => void;
}

/** How long a --stop-at-end run waits for records before deciding offsets below the end hold none. */
const END_CONFIRM_WAIT_MS = 2000;
/** Rebuilds of damaged local state one run may make before it gives up. */
const MAX_REBUILDS = 3;
/** Opens retried while a single-process log is briefly held elsewhere (about 5 s). */
const LOG_BUSY_RETRIES = 20;

export interface RunOptions {
  /** Stop once this LSN is applied. */
  untilLsn?: number;
  /** Stop once caught up with the log's end. */
  stopAtEnd?: boolean;
  /** Take a final snapshot before returning (if anything was applied since the last). */
  checkpointOnExit?: boolean;
  signal?: AbortSignal;
}

export interface SnapshotRequestOutcome {
  status: 'done' | 'declined' | 'failed';
  reason?: string;
  /** The LSN of the snapshot that satisfies the request. */
  lsn?: number;
}

export interface RunSummary {
  partition: string;
  start: { source: OpenedState['source']; lsn: number; reason?: string };
  appliedLsn: number;
  recordsApplied: number;
  recordsSkipped: number;
  snapshots: CheckpointResult[];
  stoppedBy: 'until-lsn' | 'end-of-log' | 'signal';
}

/**
 * One partition's apply loop. Records are applied in batches; each batch's state writes and
 * its last LSN commit in one LevelDB batch, so after any crash the state is exactly "every
 * record up to the stored LSN". Snapshots are triggered by records applied, at most one in
 * flight: the loop pauses only for the synchronous capture, the upload overlaps applying.
 */
export class PartitionProcessor {
  private state: PartitionState | undefined;
  private opened: OpenedState | undefined;
  private inFlight: Promise<void> | undefined;
  private sinceSnapshot = 0;
  private snapshotRetryAt = 0;
  private lastSnapshotLsn = -1;
  private logOutageSince: number | undefined;
  private logOutageRetries = 0;
  private readonly results: CheckpointResult[] = [];
  private requested: { minLsn: number; settle: (o: SnapshotRequestOutcome) => void } | undefined;
  /** Set when local state turned out damaged (a capture's table check, a failed read): rebuild before the next batch. */
  private damage: CairnError | undefined;
  private rebuilds = 0;
  readonly dir: string;

  constructor(private readonly options: PartitionProcessorOptions) {
    validatePartition(options.partition);
    if (options.logPartition !== undefined) validatePartition(options.logPartition);
    this.dir = join(options.stateDir, options.partition);
  }

  get partition(): string {
    return this.options.partition;
  }

  get logPartition(): string {
    return this.options.logPartition ?? this.options.partition;
  }

  get appliedLsn(): number {
    return this.state?.appliedLsn ?? -1;
  }

  /** LSN of the last snapshot this processor published or restored from; -1 when none. */
  get snapshotLsn(): number {
    return this.lastSnapshotLsn;
  }

  /**
   * A snapshot asked for from outside (the coordinator), at or after `minLsn`. A processor
   * behind `minLsn` declines at once (another replica, or this one later, must take it);
   * one whose last snapshot already covers it answers with that snapshot. Otherwise the
   * apply loop takes one at its next turn, never while another is uploading.
   */
  requestSnapshot(minLsn: number): Promise<SnapshotRequestOutcome> {
    if (this.lastSnapshotLsn >= minLsn) return Promise.resolve({ status: 'done', lsn: this.lastSnapshotLsn, reason: `snapshot at LSN ${this.lastSnapshotLsn} already covers it` });
    if (this.appliedLsn < minLsn) {
      const reason = `applied LSN ${this.appliedLsn} is behind minLsn ${minLsn}`;
      this.options.logger.warn({ partition: this.options.partition, minLsn, appliedLsn: this.appliedLsn }, 'snapshot request declined: behind its minimum LSN');
      return Promise.resolve({ status: 'declined', reason });
    }
    this.requested?.settle({ status: 'failed', reason: 'superseded by a newer request' });
    return new Promise((settle) => {
      this.requested = { minLsn, settle };
    });
  }

  /** Opens local state, or bootstraps it from the latest snapshot. */
  async open(): Promise<OpenedState> {
    if (this.opened) return this.opened;
    this.opened = await openOrBootstrap(this.context());
    this.state = this.opened.state;
    this.lastSnapshotLsn = this.opened.restore?.metadata.lsn ?? -1;
    await removeLeftovers(this.options.stateDir, this.options.partition);
    this.options.logger.info({ partition: this.options.partition, source: this.opened.source, lsn: this.appliedLsn, reason: this.opened.reason }, 'partition state opened');
    return this.opened;
  }

  async run(options: RunOptions = {}): Promise<RunSummary> {
    const opened = await this.openWaitingForLog(options.signal);
    const reporting = this.startReporting(options.signal);
    try {
      return await this.loop(opened, options);
    } finally {
      await reporting?.();
    }
  }

  /** Reports to the coordinator while running; returns how to stop it. */
  private startReporting(signal: AbortSignal | undefined): (() => Promise<void>) | undefined {
    const { coordinator, node, log, logger, metrics, partition } = this.options;
    if (!coordinator) return undefined;
    const reporter = new CoordinatorReporter({ ...coordinator, node, log, logger, processor: this, onReport: (outcome) => metrics?.coordinatorReports.inc({ partition, outcome }) });
    const stop = new AbortController();
    reporter.start(signal ? AbortSignal.any([signal, stop.signal]) : stop.signal);
    return async () => {
      stop.abort();
      await reporter.stopped();
    };
  }

  private async loop(opened: OpenedState, options: RunOptions): Promise<RunSummary> {
    const startLsn = this.appliedLsn;
    const { partition, batchSize, log } = this.options;
    let applied = 0;
    let skipped = 0;
    let stoppedBy: RunSummary['stoppedBy'] = 'signal';
    let confirmingEnd = 0;
    let endSeen = -1;
    while (!options.signal?.aborted) {
      if (this.damage) await this.rebuildDamagedState(this.damage);
      if (this.requested && !this.inFlight) await this.serveSnapshotRequest();
      if (options.untilLsn !== undefined && this.appliedLsn >= options.untilLsn) {
        stoppedBy = 'until-lsn';
        break;
      }
      let records: LogRecord[];
      try {
        records = await log.read(this.logPartition, this.appliedLsn + 1, {
          maxRecords: batchSize,
          waitMs: options.stopAtEnd ? confirmingEnd : 500,
          ...(options.untilLsn !== undefined ? { toLsn: options.untilLsn } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (err) {
        if (isCairnError(err, 'TRIM_GAP')) {
          await this.recoverFromTrimGap();
          continue;
        }
        if (await this.waitOutLogOutage(err, options.signal)) continue;
        throw err;
      }
      this.logOutageSince = undefined;
      this.logOutageRetries = 0;
      if (records.length === 0) {
        if (!options.stopAtEnd) continue;
        let end: number;
        try {
          end = (await log.info(this.logPartition)).end;
        } catch (err) {
          if (await this.waitOutLogOutage(err, options.signal)) continue;
          throw err;
        }
        // Offsets below the end may hold no records (Kafka transaction markers): an empty
        // read that was given time to see them settles it.
        if (end <= this.appliedLsn + 1 || (confirmingEnd > 0 && end === endSeen)) {
          stoppedBy = 'end-of-log';
          break;
        }
        endSeen = end;
        confirmingEnd = END_CONFIRM_WAIT_MS;
        continue;
      }
      confirmingEnd = 0;
      let outcome: { applied: number; skipped: number };
      try {
        outcome = await this.applyBatch(records);
      } catch (err) {
        if (!isLocalCorruption(err)) throw err;
        this.damage = err; // nothing of the batch committed; rebuilt at the top of the loop
        continue;
      }
      applied += outcome.applied;
      skipped += outcome.skipped;
      await this.maybeSnapshot(records.length);
    }
    await this.drainSnapshot();
    if (options.checkpointOnExit && this.appliedLsn > this.lastSnapshotLsn) await this.checkpoint();
    this.requested?.settle({ status: 'failed', reason: `processor stopped (${stoppedBy})` });
    this.requested = undefined;
    return {
      partition,
      start: { source: opened.source, lsn: startLsn, ...(opened.reason ? { reason: opened.reason } : {}) },
      appliedLsn: this.appliedLsn,
      recordsApplied: applied,
      recordsSkipped: skipped,
      snapshots: [...this.results],
      stoppedBy,
    };
  }

  /** open(), waiting while the log is unreachable (a worker started before its broker). */
  private async openWaitingForLog(signal: AbortSignal | undefined): Promise<OpenedState> {
    for (let busy = 0; ; ) {
      try {
        return await this.open();
      } catch (err) {
        // A coordinator opens a single-process log for a moment to read or trim it; a few
        // seconds of LOG_BUSY is that, longer is another worker and a real error.
        if (isCairnError(err, 'LOG_BUSY') && busy++ < LOG_BUSY_RETRIES && !signal?.aborted) {
          await sleep(250, undefined, signal ? { signal } : {}).catch(() => undefined);
          continue;
        }
        if (await this.waitOutLogOutage(err, signal)) continue;
        if (signal?.aborted) throw new CairnError('ABORTED', `${this.options.partition}: stopped while waiting for the log`, { cause: err });
        throw err;
      }
    }
  }

  /**
   * A log that is temporarily unreachable (a broker restarting) is waited out: the state
   * and its LSN are untouched, so reading resumes exactly where it stopped. Returns false
   * for errors that are not a retryable outage.
   */
  private async waitOutLogOutage(err: unknown, signal: AbortSignal | undefined): Promise<boolean> {
    const e = toCairnError(err);
    if (!e.retryable || e.code !== 'LOG_UNAVAILABLE' || signal?.aborted) return false;
    const { partition, logger } = this.options;
    const now = Date.now();
    this.logOutageSince ??= now;
    const delay = Math.min(5000, 200 * 2 ** Math.min(5, this.logOutageRetries++)) * (0.5 + Math.random() / 2);
    logger.warn({ partition, lsn: this.appliedLsn, err: e.message, downForMs: now - this.logOutageSince, retryInMs: Math.round(delay) }, 'log unavailable; waiting');
    await sleep(delay, undefined, signal ? { signal } : {}).catch(() => undefined);
    return true;
  }

  /** Takes a snapshot now and waits for it (sync phase, then upload). */
  async checkpoint(): Promise<CheckpointResult> {
    await this.drainSnapshot();
    return (await this.startSnapshot()).result;
  }

  async close(): Promise<void> {
    await this.drainSnapshot();
    await this.state?.close();
    this.state = undefined;
    this.opened = undefined;
  }

  private async applyBatch(records: LogRecord[]): Promise<{ applied: number; skipped: number }> {
    const state = this.requireState();
    const batch = new BatchWrites((key) => state.get(key));
    const { processor, onBadRecord, logger, partition, metrics } = this.options;
    let skipped = 0;
    for (const record of records) {
      batch.beginRecord();
      try {
        if (record.decodeError !== undefined) {
          throw new CairnError('CORRUPT', `record at LSN ${record.lsn} of ${partition} could not be decoded: ${record.decodeError}`, {
            details: { partition, lsn: record.lsn },
          });
        }
        await processor.apply(record, batch.view);
      } catch (err) {
        // Damaged local state surfaced through state.get: not this record's fault.
        if (isLocalCorruption(err)) throw err;
        const undecodable = record.decodeError !== undefined;
        if (onBadRecord === 'skip') {
          batch.rollbackRecord();
          skipped++;
          metrics?.recordsSkipped.inc({ partition, reason: undecodable ? 'decode' : 'processor' });
          logger.warn({ partition, lsn: record.lsn, err: String(err) }, undecodable ? 'record could not be decoded; skipped' : 'processor threw; record skipped');
          continue;
        }
        // Nothing of this batch is committed: state stays at the last good LSN.
        if (undecodable) throw err;
        throw new CairnError('PROCESSOR_FAILED', `processor ${processor.name} failed on ${partition} at LSN ${record.lsn}: ${(err as Error)?.message ?? String(err)}`, {
          cause: err,
          details: { partition, lsn: record.lsn },
        });
      }
    }
    const last = records[records.length - 1]!.lsn;
    await state.commit(batch.writes, last);
    metrics?.recordsApplied.inc({ partition }, records.length - skipped);
    metrics?.appliedLsn.set({ partition }, last);
    return { applied: records.length - skipped, skipped };
  }

  private async maybeSnapshot(count: number): Promise<void> {
    this.sinceSnapshot += count;
    const every = this.options.everyRecords;
    if (every <= 0 || this.sinceSnapshot < every || this.inFlight || Date.now() < this.snapshotRetryAt) return;
    await this.startSnapshot();
  }

  /**
   * Sync phase inline (the loop is paused while we await it); the async phase runs in the
   * background. `result` rejects on failure for callers who wait; the background path logs
   * the failure and backs off, so a store outage never stops the apply loop.
   */
  private async startSnapshot(): Promise<{ result: Promise<CheckpointResult> }> {
    const state = this.requireState();
    const { repository, partition, node, log, logger, metrics } = this.options;
    const staging = join(this.options.stateDir, '.staging', `${partition}-${newSnapshotId()}`);
    const capture = await state.capture(staging);
    this.sinceSnapshot = 0;
    metrics?.syncPause.observe({ partition }, capture.syncPauseMs / 1000);
    const result = repository
      .checkpoint(capture, { partition, node, source: log.source(this.logPartition), logger })
      .finally(() => capture.release().catch(() => undefined));
    const settled = result.then(
      (r) => {
        this.results.push(r);
        if (r.status === 'published') this.lastSnapshotLsn = r.metadata.lsn;
        metrics?.snapshots.inc({ partition, status: r.status });
        metrics?.snapshotBytes.inc({ partition, kind: 'uploaded' }, r.metadata.stats.uploadedBytes);
        metrics?.snapshotBytes.inc({ partition, kind: 'copied' }, r.metadata.stats.copiedBytes);
        logger.info({ partition, status: r.status, lsn: r.metadata.lsn, snapshotId: r.metadata.snapshotId, stats: r.metadata.stats }, 'snapshot finished');
      },
      (err: unknown) => {
        if (isLocalCorruption(err)) this.damage = err;
        this.snapshotRetryAt = Date.now() + 5_000;
        metrics?.snapshots.inc({ partition, status: 'failed' });
        logger.error({ partition, err: toCairnError(err).toJSON() }, 'snapshot failed; will retry');
      },
    );
    this.inFlight = settled.finally(() => {
      this.inFlight = undefined;
    });
    return { result };
  }

  /** Only the capture pauses the loop; the request settles when the upload does. */
  private async serveSnapshotRequest(): Promise<void> {
    const request = this.requested!;
    this.requested = undefined;
    // A snapshot by records applied may have covered it since it was asked for.
    if (this.lastSnapshotLsn >= request.minLsn) return request.settle({ status: 'done', lsn: this.lastSnapshotLsn });
    const failed = (err: unknown) => request.settle({ status: 'failed', reason: toCairnError(err).message });
    try {
      const { result } = await this.startSnapshot();
      result.then((r) => request.settle({ status: 'done', lsn: r.metadata.lsn, ...(r.status === 'published' ? {} : { reason: `snapshot ${r.status}` }) }), failed);
    } catch (err) {
      failed(err);
    }
  }

  private async drainSnapshot(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  /** The log was trimmed past us while running (e.g. by the coordinator): re-bootstrap. */
  private async recoverFromTrimGap(): Promise<void> {
    const info = await this.options.log.info(this.logPartition);
    await this.replaceState(this.appliedLsn + 1, info.start, `trim gap: the log starts at ${info.start}`, false);
  }

  /**
   * Local state is damaged (a table failed its block checks, LevelDB reported corruption):
   * nothing of it may be published or trusted, so it is replaced by the latest snapshot and
   * the log is replayed from there. Repeated damage (a failing disk) stops the partition.
   */
  private async rebuildDamagedState(damage: CairnError): Promise<void> {
    this.damage = undefined;
    const { partition, logger } = this.options;
    if (++this.rebuilds > MAX_REBUILDS) {
      throw new CairnError('CORRUPT', `${partition}: local state was damaged again after ${MAX_REBUILDS} rebuilds (a failing disk?): ${damage.message}`, { cause: damage, details: damage.details ?? {} });
    }
    logger.error({ partition, lsn: this.appliedLsn, err: damage.toJSON() }, 'local state is damaged; rebuilding it from the latest snapshot');
    const info = await this.options.log.info(this.logPartition);
    await this.replaceState(this.appliedLsn + 1, info.start, `damaged local state: ${damage.message}`, true);
  }

  private async replaceState(needed: number, logStart: number, reason: string, discardable: boolean): Promise<void> {
    await this.drainSnapshot();
    this.sinceSnapshot = 0;
    const replaced = await replaceLocalState(this.context(), { needed, logStart, reason, discardable }, async () => {
      await this.state?.close();
      this.state = undefined;
    });
    this.state = replaced.state;
    this.lastSnapshotLsn = replaced.snapshotLsn;
  }

  private context() {
    const { partition, log, repository, logger, onBootstrapProgress } = this.options;
    return { partition, logPartition: this.logPartition, dir: this.dir, log, repository, logger, ...(onBootstrapProgress ? { onProgress: onBootstrapProgress } : {}) };
  }

  private requireState(): PartitionState {
    if (!this.state) throw new CairnError('INTERNAL', `partition ${this.options.partition} is not open`);
    return this.state;
  }
}
