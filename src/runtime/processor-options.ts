import type { Logger } from '../core/logger.js';
import type { Log } from '../log/types.js';
import type { Ownership } from '../snapshots/ownership.js';
import type { SnapshotAccess } from '../snapshots/repository.js';
import type { CoordinatorLink } from './coordinator-reporter.js';
import type { RuntimeMetrics } from './metrics.js';
import type { Processor } from './processor-module.js';

/** What a PartitionProcessor is given (public: src/index.ts exports it through partition-processor.ts). */
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
  /** How long a batch run (untilLsn, stopAtEnd) waits out an unreachable log; default LOG_DEFAULTS.unavailableTimeoutMs (core/defaults.ts). */
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

/** What one PartitionProcessor.run is asked to do; with none, it runs until its signal aborts. */
export interface RunOptions {
  /** Stop once this LSN is applied. */
  untilLsn?: number;
  /** Stop once caught up with the log's end. */
  stopAtEnd?: boolean;
  /** Take a final snapshot before returning (if anything was applied since the last). */
  checkpointOnExit?: boolean;
  signal?: AbortSignal;
}

/** A run someone waits for the end of: it must end, so it waits out a log outage only so long (log-outage.ts). */
export function isBatchRun(run: Pick<RunOptions, 'untilLsn' | 'stopAtEnd'>): boolean {
  return run.stopAtEnd === true || run.untilLsn !== undefined;
}
