import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { LOG_UNAVAILABLE_TIMEOUT_MS } from '../core/config.js';
import { CairnError, isCairnError, toCairnError } from '../core/errors.js';
import { newSnapshotId } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import { validatePartition } from '../core/names.js';
import type { Log, LogRecord } from '../log/types.js';
import type { CheckpointResult, SnapshotAccess } from '../snapshots/repository.js';
import type { Ownership } from '../snapshots/ownership.js';
import { isLocalCorruption } from '../state/integrity.js';
import { PartitionState } from '../state/partition-state.js';
import { BatchWrites } from './batch.js';
import { CommitPipeline } from './commit-pipeline.js';
import { openOrBootstrap, removeLeftovers, replaceLocalState, type OpenedState } from './bootstrap.js';
import type { Processor, ProcessorContext, ProcessorRecord } from './processor-module.js';
import { closeProcessor, initProcessor, recordDecoder, type RecordDecoder } from './processor-hooks.js';
import type { RuntimeMetrics } from './metrics.js';
import { CoordinatorReporter, type CoordinatorLink } from './coordinator-reporter.js';
import { LogOutage } from './log-outage.js';
import { SnapshotPolicy } from './snapshot-policy.js';

export interface PartitionProcessorOptions {
  partition: string;
  /** The log partition records come from; default `partition` (a fork replays its parent's). */
  logPartition?: string;
  processor: Processor;
  log: Log;
  repository: SnapshotAccess;
  /** Root state folder; this partition's LevelDB lives in `{stateDir}/{partition}`. */
  stateDir: string;
  node: string;
  /** Keep the newest snapshot less than this many LSNs behind the applied one (snapshot-policy.ts); 0 = never. */
  everyRecords: number;
  /** How long a batch run (untilLsn, stopAtEnd) waits out an unreachable log; default LOG_UNAVAILABLE_TIMEOUT_MS. */
  unavailableTimeoutMs?: number;
  batchSize: number;
  onBadRecord: 'stop' | 'skip';
  logger: Logger;
  metrics?: RuntimeMetrics;
  /** Report progress to this coordinator while running, and follow its commands. */
  coordinator?: CoordinatorLink;
  /** In a worker group: the claim checked before each snapshot is published (FENCED stops the partition). */
  ownership?: Ownership;
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
  /** `store`: which store a bootstrap restored from (the home store, or another of the class). */
  start: { source: OpenedState['source']; lsn: number; reason?: string; store?: string };
  appliedLsn: number;
  recordsApplied: number;
  recordsSkipped: number;
  snapshots: CheckpointResult[];
  stoppedBy: 'until-lsn' | 'end-of-log' | 'signal';
  /** Time in the apply loop (after the state was opened or bootstrapped), in ms. */
  durationMs: number;
  /** recordsApplied over durationMs: the replay rate, idle waits at the end of the log included. */
  recordsPerSec: number;
}

/**
 * One partition's apply loop. Records are applied in batches; each batch's state writes and
 * its last LSN commit in one LevelDB batch, so after any crash the state is exactly "every
 * record up to the stored LSN". Snapshots follow the policy of snapshot-policy.ts, at most
 * one in flight: the loop pauses only for the synchronous capture, the upload overlaps
 * applying. An unreachable log is waited out (log-outage.ts), for a batch run only so long.
 */
export class PartitionProcessor {
  private state: PartitionState | undefined;
  private opened: OpenedState | undefined;
  private inFlight: Promise<void> | undefined;
  private lastSnapshotLsn = -1;
  private readonly policy: SnapshotPolicy;
  private readonly outage: LogOutage;
  private readonly results: CheckpointResult[] = [];
  private requested: { minLsn: number; settle: (o: SnapshotRequestOutcome) => void } | undefined;
  /** Set when local state turned out damaged (a capture's table check, a failed read): rebuild before the next batch. */
  private damage: CairnError | undefined;
  private rebuilds = 0;
  /** Set when a publish found the partition claimed by another worker: the loop stops. */
  private fenced: CairnError | undefined;
  private readonly decode: RecordDecoder;
  private readonly commits = new CommitPipeline();
  readonly dir: string;

  constructor(private readonly options: PartitionProcessorOptions) {
    validatePartition(options.partition);
    if (options.logPartition !== undefined) validatePartition(options.logPartition);
    this.dir = join(options.stateDir, options.partition);
    this.policy = new SnapshotPolicy(options.everyRecords);
    this.decode = recordDecoder(options.processor);
    const unavailableTimeoutMs = options.unavailableTimeoutMs ?? LOG_UNAVAILABLE_TIMEOUT_MS;
    this.outage = new LogOutage({ partition: options.partition, logger: options.logger, unavailableTimeoutMs });
  }

  get partition(): string {
    return this.options.partition;
  }

  get logPartition(): string {
    return this.options.logPartition ?? this.options.partition;
  }

  /** The LSN committed to local state. */
  get appliedLsn(): number {
    return this.state?.appliedLsn ?? -1;
  }

  /** The LSN the loop has applied, its batch possibly still committing (commit-pipeline.ts). */
  private get aheadLsn(): number {
    return this.commits.lsn ?? this.appliedLsn;
  }

  /** Whether local state is open (and so can answer queries). */
  get isOpen(): boolean {
    return this.state !== undefined;
  }

  /** A consistent read of the live state (PartitionState.query); STATE_UNAVAILABLE before it is open. */
  query(q: Parameters<PartitionState['query']>[0]): ReturnType<PartitionState['query']> {
    if (!this.state) throw new CairnError('STATE_UNAVAILABLE', `${this.options.partition}: state is not open yet`, { details: { partition: this.options.partition } });
    return this.state.query(q);
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
    this.policy.reset(this.opened.source === 'local' ? this.appliedLsn : this.lastSnapshotLsn);
    await removeLeftovers(this.options.stateDir, this.options.partition);
    this.options.logger.info({ partition: this.options.partition, source: this.opened.source, lsn: this.appliedLsn, reason: this.opened.reason }, 'partition state opened');
    return this.opened;
  }

  async run(options: RunOptions = {}): Promise<RunSummary> {
    const opened = await this.openWaitingForLog(options);
    const { processor, partition, log, logger } = this.options;
    const context: ProcessorContext = { partition, source: log.source(this.logPartition), appliedLsn: this.appliedLsn, logger };
    await initProcessor(processor, context);
    const reporting = this.startReporting(options.signal);
    try {
      return await this.loop(opened, options);
    } finally {
      await reporting?.();
      await closeProcessor(processor, { ...context, appliedLsn: this.appliedLsn }, logger);
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
    const startedLoop = performance.now();
    const { partition, batchSize, log } = this.options;
    let applied = 0;
    let skipped = 0;
    let stoppedBy: RunSummary['stoppedBy'] = 'signal';
    let confirmingEnd = 0;
    let endSeen = -1;
    const { signal } = options;
    const bounded = isBatchRun(options);
    while (!signal?.aborted) {
      if (this.fenced) throw this.fenced;
      if (this.damage) await this.rebuildDamagedState(this.damage);
      if (this.requested && !this.inFlight) await this.serveSnapshotRequest();
      if (options.untilLsn !== undefined && this.aheadLsn >= options.untilLsn) {
        stoppedBy = 'until-lsn';
        break;
      }
      let records: LogRecord[];
      let startedAt = Date.now();
      try {
        records = await log.read(this.logPartition, this.aheadLsn + 1, {
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
        if (await this.outage.waitOut(err, { signal, bounded, startedAt, lsn: this.appliedLsn })) continue;
        throw err;
      }
      this.outage.ended();
      if (records.length === 0) {
        // Idle: what was applied is committed, so offsets, lag and live queries catch up.
        if (!(await this.settleCommits())) continue;
        // After an empty read too, not only after a batch: a snapshot that settled since may leave one due.
        await this.maybeSnapshot();
        if (!options.stopAtEnd) continue;
        let end: number;
        startedAt = Date.now();
        try {
          end = (await log.info(this.logPartition)).end;
        } catch (err) {
          if (await this.outage.waitOut(err, { signal, bounded, startedAt, lsn: this.appliedLsn })) continue;
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
      await this.maybeSnapshot();
    }
    await this.commits.settle();
    await this.drainSnapshot();
    // A run that ends by itself (not on a signal, which must stop promptly) may end while a
    // snapshot uploads, with the next one due: taking it keeps the newest snapshot less than
    // everyRecords behind, as while running.
    if (stoppedBy !== 'signal') {
      await this.maybeSnapshot();
      await this.drainSnapshot();
    }
    if (options.checkpointOnExit && this.appliedLsn > this.lastSnapshotLsn) await this.checkpoint();
    this.requested?.settle({ status: 'failed', reason: `processor stopped (${stoppedBy})` });
    this.requested = undefined;
    const durationMs = Math.round(performance.now() - startedLoop);
    return {
      partition,
      start: { source: opened.source, lsn: startLsn, ...(opened.reason ? { reason: opened.reason } : {}), ...(opened.restore?.store ? { store: opened.restore.store } : {}) },
      appliedLsn: this.appliedLsn,
      recordsApplied: applied,
      recordsSkipped: skipped,
      snapshots: [...this.results],
      stoppedBy,
      durationMs,
      recordsPerSec: durationMs > 0 ? Math.round(applied / (durationMs / 1000)) : 0,
    };
  }

  /** open(), waiting while the log is unreachable (a worker started before its broker). */
  private async openWaitingForLog(options: RunOptions): Promise<OpenedState> {
    const { signal } = options;
    for (let busy = 0; ; ) {
      const startedAt = Date.now();
      try {
        return await this.open();
      } catch (err) {
        // A coordinator opens a single-process log for a moment to read or trim it; a few
        // seconds of LOG_BUSY is that, longer is another worker and a real error.
        if (isCairnError(err, 'LOG_BUSY') && busy++ < LOG_BUSY_RETRIES && !signal?.aborted) {
          await sleep(250, undefined, signal ? { signal } : {}).catch(() => undefined);
          continue;
        }
        if (await this.outage.waitOut(err, { signal, bounded: isBatchRun(options), startedAt, lsn: this.appliedLsn })) continue;
        if (signal?.aborted) throw new CairnError('ABORTED', `${this.options.partition}: stopped while waiting for the log`, { cause: err });
        throw err;
      }
    }
  }

  /** Takes a snapshot now and waits for it (sync phase, then upload). */
  async checkpoint(): Promise<CheckpointResult> {
    await this.drainSnapshot();
    return (await this.startSnapshot()).result;
  }

  async close(): Promise<void> {
    // A run that failed may leave its last good batch committing; it lands before the close.
    await this.commits.settle().catch((err: unknown) => this.options.logger.error({ partition: this.options.partition, err: toCairnError(err) }, 'the last batch failed to commit'));
    await this.drainSnapshot();
    await this.state?.close();
    this.state = undefined;
    this.opened = undefined;
  }

  private async applyBatch(records: LogRecord[]): Promise<{ applied: number; skipped: number }> {
    const state = this.requireState();
    const { processor, onBadRecord, logger, partition, metrics } = this.options;
    const batch = new BatchWrites((key) => this.commits.read(state, key), onBadRecord === 'skip');
    let skipped = 0;
    for (const record of records) {
      batch.beginRecord();
      let undecodable = false;
      try {
        let input: ProcessorRecord;
        try {
          input = this.decode(record, partition);
        } catch (err) {
          undecodable = true;
          throw err;
        }
        await processor.apply(input, batch.view);
      } catch (err) {
        // Damaged local state surfaced through state.get: not this record's fault.
        if (isLocalCorruption(err)) throw err;
        if (onBadRecord === 'skip') {
          batch.rollbackRecord();
          skipped++;
          metrics?.recordsSkipped.inc({ partition, reason: undecodable ? 'decode' : 'processor' });
          logger.warn({ partition, lsn: record.lsn, err }, undecodable ? 'record could not be decoded; skipped' : 'processor threw; record skipped');
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
    const committed = records.length - skipped;
    await this.commits.submit(state, batch.writes, last, () => {
      metrics?.recordsApplied.inc({ partition }, committed);
      metrics?.appliedLsn.set({ partition }, last);
    });
    return { applied: records.length - skipped, skipped };
  }

  private async maybeSnapshot(): Promise<void> {
    if (!this.inFlight && this.policy.due(this.aheadLsn, Date.now()) && (await this.settleCommits())) await this.startSnapshot();
  }

  /**
   * Waits for the batch in flight to commit. A commit that found local state damaged sets
   * `damage` (rebuilt at the top of the loop, as when applying) and answers false.
   */
  private async settleCommits(): Promise<boolean> {
    try {
      await this.commits.settle();
      return true;
    } catch (err) {
      if (!isLocalCorruption(err)) throw err;
      this.damage = err;
      return false;
    }
  }

  /**
   * Sync phase inline (the loop is paused while we await it); the async phase runs in the
   * background. `result` rejects on failure for callers who wait; the background path logs
   * the failure and backs off, so a store outage never stops the apply loop.
   */
  private async startSnapshot(): Promise<{ result: Promise<CheckpointResult> }> {
    await this.commits.settle();
    const state = this.requireState();
    const { repository, partition, node, log, logger, metrics } = this.options;
    const staging = join(this.options.stateDir, '.staging', `${partition}-${newSnapshotId()}`);
    const capture = await state.capture(staging);
    metrics?.syncPause.observe({ partition }, capture.syncPauseMs / 1000);
    const result = repository
      .checkpoint(capture, { partition, node, source: log.source(this.logPartition), logger, ...(this.options.ownership ? { beforePublish: this.options.ownership.check } : {}) })
      .finally(() => capture.release().catch(() => undefined));
    const settled = result.then(
      (r) => {
        this.results.push(r);
        if (r.status === 'published') this.lastSnapshotLsn = r.metadata.lsn;
        this.policy.covered(r.status === 'superseded' ? Math.max(r.metadata.lsn, r.currentLsn) : r.metadata.lsn);
        metrics?.snapshots.inc({ partition, status: r.status });
        for (const o of r.stores ?? []) if (o.status === 'failed') metrics?.snapshotStoreMisses.inc({ partition, store: o.store });
        metrics?.snapshotBytes.inc({ partition, kind: 'uploaded' }, r.metadata.stats.uploadedBytes);
        metrics?.snapshotBytes.inc({ partition, kind: 'copied' }, r.metadata.stats.copiedBytes);
        logger.info({ partition, status: r.status, lsn: r.metadata.lsn, snapshotId: r.metadata.snapshotId, stats: r.metadata.stats }, 'snapshot finished');
      },
      (err: unknown) => {
        if (isLocalCorruption(err)) this.damage = err;
        if (isCairnError(err, 'FENCED')) this.fenced = err; // the loop stops at its next turn
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
    if (!(await this.settleCommits())) return; // damaged: the loop rebuilds instead
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
    logger.error({ partition, lsn: this.appliedLsn, err: damage }, 'local state is damaged; rebuilding it from the latest snapshot');
    const info = await this.options.log.info(this.logPartition);
    await this.replaceState(this.appliedLsn + 1, info.start, `damaged local state: ${damage.message}`, true);
  }

  private async replaceState(needed: number, logStart: number, reason: string, discardable: boolean): Promise<void> {
    // Whatever was in flight is discarded with the state it was committing to.
    await this.commits.settle().catch(() => undefined);
    await this.drainSnapshot();
    const replaced = await replaceLocalState(this.context(), { needed, logStart, reason, discardable }, async () => {
      await this.state?.close();
      this.state = undefined;
    });
    this.state = replaced.state;
    this.lastSnapshotLsn = replaced.snapshotLsn;
    this.policy.reset(replaced.snapshotLsn);
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

/** A run someone waits for the end of: it must end, so it waits out a log outage only so long. */
function isBatchRun(options: RunOptions): boolean {
  return options.stopAtEnd === true || options.untilLsn !== undefined;
}
