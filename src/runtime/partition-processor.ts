import { join } from 'node:path';
import { LOG_DEFAULTS } from '../core/defaults.js';
import { CairnError, toCairnError } from '../core/errors.js';
import { validatePartition } from '../core/names.js';
import type { LogRecord } from '../log/types.js';
import type { CheckpointResult } from '../snapshots/repository.js';
import type { PartitionState } from '../state/partition-state.js';
import { applyRecords, BatchWrites } from './batch.js';
import { CommitPipeline } from './commit-pipeline.js';
import { openOrBootstrap, removeLeftovers, replaceLocalState, type OpenedState, type Replacement } from './bootstrap.js';
import { reportWhileRunning } from './coordinator-reporter.js';
import { LogOutage, openWaitingForLog } from './log-outage.js';
import { LogTail } from './log-tail.js';
import { closeProcessor, initProcessor, recordDecoder, type RecordDecoder } from './processor-hooks.js';
import type { ProcessorContext } from './processor-module.js';
import { isBatchRun, type PartitionProcessorOptions, type RunOptions } from './processor-options.js';
import { RunTally, type RunSummary, type StopReason } from './run-summary.js';
import { SnapshotSchedule, type SnapshotRequestOutcome } from './snapshot-schedule.js';
import { StateRecovery } from './state-recovery.js';

export type { RunSummary } from './run-summary.js';
export type { SnapshotRequestOutcome } from './snapshot-schedule.js';
export type { PartitionProcessorOptions, RunOptions } from './processor-options.js';

/**
 * One partition's apply loop. Records are applied in batches; each batch's state writes and
 * its last LSN commit in one LevelDB batch, so after any crash the state is exactly "every
 * record up to the stored LSN". The commit of one batch overlaps applying the next
 * (commit-pipeline.ts). Snapshots, at most one in flight, are scheduled by
 * snapshot-schedule.ts: the loop pauses only for the synchronous capture. The log is read by
 * log-tail.ts, an unreachable one waited out (log-outage.ts), for a batch run only so long. A
 * trim gap or damaged local state replaces the state from the latest snapshot
 * (state-recovery.ts).
 */
export class PartitionProcessor {
  private state: PartitionState | undefined;
  private opened: OpenedState | undefined;
  private readonly snapshots: SnapshotSchedule;
  private readonly recovery: StateRecovery;
  private readonly outage: LogOutage;
  private readonly decode: RecordDecoder;
  private readonly commits = new CommitPipeline();
  readonly dir: string;

  constructor(private readonly options: PartitionProcessorOptions) {
    validatePartition(options.partition);
    if (options.logPartition !== undefined) validatePartition(options.logPartition);
    this.dir = join(options.stateDir, options.partition);
    this.decode = recordDecoder(options.processor);
    const { partition, logger, log } = options;
    const unavailableTimeoutMs = options.unavailableTimeoutMs ?? LOG_DEFAULTS.unavailableTimeoutMs;
    this.outage = new LogOutage({ partition, logger, unavailableTimeoutMs });
    const appliedLsn = () => this.appliedLsn;
    const settleCommits = () => this.settleCommits();
    this.snapshots = new SnapshotSchedule({
      ...options,
      logPartition: this.logPartition,
      appliedLsn,
      aheadLsn: () => this.aheadLsn,
      settleCommits,
      settledState: async () => {
        await this.commits.settle();
        return this.requireState();
      },
      noteDamage: (err) => this.recovery.absorbDamage(err),
    });
    this.recovery = new StateRecovery({ partition, logPartition: this.logPartition, log, logger, appliedLsn, settleCommits, replace: (what) => this.replaceState(what) });
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
    return this.snapshots.snapshotLsn;
  }

  /** A snapshot asked for from outside (the coordinator), at or after `minLsn` (snapshot-schedule.ts). */
  requestSnapshot(minLsn: number): Promise<SnapshotRequestOutcome> {
    return this.snapshots.request(minLsn);
  }

  /** Opens local state, or bootstraps it from the latest snapshot. */
  async open(): Promise<OpenedState> {
    if (this.opened) return this.opened;
    this.opened = await openOrBootstrap(this.context());
    this.state = this.opened.state;
    const snapshotLsn = this.opened.restore?.metadata.lsn ?? -1;
    this.snapshots.reset(snapshotLsn, this.opened.source === 'local' ? this.appliedLsn : snapshotLsn);
    await removeLeftovers(this.options.stateDir, this.options.partition);
    this.options.logger.info({ partition: this.options.partition, source: this.opened.source, lsn: this.appliedLsn, reason: this.opened.reason }, 'partition state opened');
    return this.opened;
  }

  async run(options: RunOptions = {}): Promise<RunSummary> {
    const { processor, partition, log, logger, coordinator, node, metrics } = this.options;
    // A worker started before its broker waits for it, as for any outage.
    const opened = await openWaitingForLog(() => this.open(), this.outage, { partition, signal: options.signal, bounded: isBatchRun(options), lsn: () => this.appliedLsn });
    const context: ProcessorContext = { partition, source: log.source(this.logPartition), appliedLsn: this.appliedLsn, logger };
    await initProcessor(processor, context);
    const onReport = (outcome: 'ok' | 'failed') => metrics?.coordinatorReports.inc({ partition, outcome });
    const stopReporting = coordinator && reportWhileRunning({ ...coordinator, node, log, logger, processor: this, onReport }, options.signal);
    try {
      return await this.loop(opened, options);
    } finally {
      await stopReporting?.();
      await closeProcessor(processor, { ...context, appliedLsn: this.appliedLsn }, logger);
    }
  }

  /** Until the run's bound, its signal or an error, each turn reads a batch, applies it and hands it over to commit. */
  private async loop(opened: OpenedState, options: RunOptions): Promise<RunSummary> {
    const { partition, batchSize, log } = this.options;
    const { signal, untilLsn } = options;
    const tally = new RunTally(partition, opened, this.appliedLsn);
    const tail = new LogTail({ ...options, log, logPartition: this.logPartition, batchSize, outage: this.outage, appliedLsn: () => this.appliedLsn });
    let stoppedBy: StopReason = 'signal';
    while (!signal?.aborted) {
      if (this.snapshots.fenced) throw this.snapshots.fenced;
      await this.recovery.rebuildIfDamaged();
      await this.snapshots.serveRequest();
      if (untilLsn !== undefined && this.aheadLsn >= untilLsn) {
        stoppedBy = 'until-lsn';
        break;
      }
      const records = await tail.read(this.aheadLsn + 1);
      if (records === 'trim-gap') await this.recovery.recoverFromTrimGap();
      if (records === 'trim-gap' || records === 'retry') continue;
      if (records.length === 0) {
        // Idle: what was applied is committed, so offsets, lag and live queries catch up.
        if (!(await this.settleCommits())) continue;
        // After an empty read too, not only after a batch: a snapshot that settled since may leave one due.
        await this.snapshots.maybeTake();
        if (options.stopAtEnd && (await tail.reachedEnd())) {
          stoppedBy = 'end-of-log';
          break;
        }
        continue;
      }
      const batch = await this.applyBatch(records);
      if (!batch) continue; // damaged state: rebuilt at the top of the loop
      tally.counted(batch);
      await this.snapshots.maybeTake();
    }
    await this.commits.settle();
    await this.snapshots.finishRun(stoppedBy, options.checkpointOnExit === true);
    return tally.summary({ appliedLsn: this.appliedLsn, snapshots: this.snapshots.results, stoppedBy });
  }

  /**
   * Applies a batch and hands it over to commit. Undefined when that found local state
   * damaged: nothing of the batch committed, and the loop rebuilds the state at its next turn.
   */
  private async applyBatch(records: LogRecord[]): Promise<{ applied: number; skipped: number } | undefined> {
    const state = this.requireState();
    const { onBadRecord, partition, metrics } = this.options;
    const batch = new BatchWrites((key) => this.commits.read(state, key), onBadRecord === 'skip');
    try {
      const skipped = await applyRecords(records, batch, { ...this.options, decode: this.decode });
      const applied = records.length - skipped;
      const last = records[records.length - 1]!.lsn;
      await this.commits.submit(state, batch.writes, last, () => {
        metrics?.recordsApplied.inc({ partition }, applied);
        metrics?.appliedLsn.set({ partition }, last);
      });
      return { applied, skipped };
    } catch (err) {
      if (this.recovery.absorbDamage(err)) return undefined;
      throw err;
    }
  }

  /**
   * Waits for the batch in flight to commit. A commit that found local state damaged hands
   * it to the recovery (rebuilt at the top of the loop, as when applying) and answers false.
   */
  private async settleCommits(): Promise<boolean> {
    try {
      await this.commits.settle();
      return true;
    } catch (err) {
      if (this.recovery.absorbDamage(err)) return false;
      throw err;
    }
  }

  /** Takes a snapshot now and waits for it (sync phase, then upload). */
  async checkpoint(): Promise<CheckpointResult> {
    return this.snapshots.checkpoint();
  }

  async close(): Promise<void> {
    // A run that failed may leave its last good batch committing; it lands before the close.
    await this.commits.settle().catch((err: unknown) => this.options.logger.error({ partition: this.options.partition, err: toCairnError(err) }, 'the last batch failed to commit'));
    await this.snapshots.drain();
    await this.state?.close();
    this.state = undefined;
    this.opened = undefined;
  }

  /** Swaps the state for the latest snapshot (state-recovery.ts decides when, bootstrap.ts whether it may). */
  private async replaceState(what: Replacement): Promise<void> {
    // Whatever was in flight is discarded with the state it was committing to.
    await this.commits.settle().catch(() => undefined);
    await this.snapshots.drain();
    const replaced = await replaceLocalState(this.context(), what, async () => {
      await this.state?.close();
      this.state = undefined;
    });
    this.state = replaced.state;
    this.snapshots.reset(replaced.snapshotLsn);
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
