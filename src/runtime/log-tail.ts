import { isCairnError } from '../core/errors.js';
import type { Log, LogRecord } from '../log/types.js';
import type { LogOutage } from './log-outage.js';
import { isBatchRun } from './processor-options.js';

/** How long a read waits for records to arrive before it returns empty. */
const READ_WAIT_MS = 500;
/** How long a --stop-at-end run waits for records before deciding offsets below the end hold none. */
const END_CONFIRM_WAIT_MS = 2000;

export interface LogTailOptions {
  log: Log;
  logPartition: string;
  batchSize: number;
  outage: LogOutage;
  /** The run's bounds: a batch run waits out an outage only so long (log-outage.ts). */
  untilLsn?: number | undefined;
  stopAtEnd?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** The LSN committed to local state, for the outage's log lines and the end-of-log check. */
  appliedLsn: () => number;
}

/**
 * What a read gave the loop: records (none at the end of the log), `trim-gap` when the log no
 * longer holds the LSN asked for (the processor replaces its state), or `retry` after an
 * outage was waited out (the loop goes round again, so a signal or a fence is seen).
 */
export type TailRead = LogRecord[] | 'trim-gap' | 'retry';

/**
 * One run's reading of its log partition: batches up to `untilLsn`, outages waited out, and
 * for a --stop-at-end run the decision that the end is reached. The loop owns the LSN to read
 * from (it changes when state is replaced); this keeps only what spans reads: whether the end
 * is being confirmed.
 */
export class LogTail {
  private readonly bounded: boolean;
  /** How long the next read waits when confirming the end (0: not confirming). */
  private confirmingEnd = 0;
  private endSeen = -1;

  constructor(private readonly o: LogTailOptions) {
    this.bounded = isBatchRun(o);
  }

  /** Up to batchSize records from `fromLsn` on. */
  async read(fromLsn: number): Promise<TailRead> {
    const { log, logPartition, batchSize, untilLsn, stopAtEnd, signal } = this.o;
    const startedAt = Date.now();
    let records: LogRecord[];
    try {
      records = await log.read(logPartition, fromLsn, {
        maxRecords: batchSize,
        waitMs: stopAtEnd ? this.confirmingEnd : READ_WAIT_MS,
        ...(untilLsn !== undefined ? { toLsn: untilLsn } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (isCairnError(err, 'TRIM_GAP')) return 'trim-gap';
      if (await this.waitOut(err, startedAt)) return 'retry';
      throw err;
    }
    this.o.outage.ended();
    // Records below the end: whatever was being confirmed starts over at the next empty read.
    if (records.length > 0) this.confirmingEnd = 0;
    return records;
  }

  /**
   * After an empty read in a --stop-at-end run, everything applied committed: whether the end
   * of the log is reached. Offsets below the end may hold no records (Kafka transaction
   * markers), so an end that did not move over one read that was given time to see them
   * settles it. False also after waiting out an outage: the loop goes round again.
   */
  async reachedEnd(): Promise<boolean> {
    const startedAt = Date.now();
    let end: number;
    try {
      end = (await this.o.log.info(this.o.logPartition)).end;
    } catch (err) {
      if (await this.waitOut(err, startedAt)) return false;
      throw err;
    }
    if (end <= this.o.appliedLsn() + 1 || (this.confirmingEnd > 0 && end === this.endSeen)) return true;
    this.endSeen = end;
    this.confirmingEnd = END_CONFIRM_WAIT_MS;
    return false;
  }

  private waitOut(err: unknown, startedAt: number): Promise<boolean> {
    return this.o.outage.waitOut(err, { signal: this.o.signal, bounded: this.bounded, startedAt, lsn: this.o.appliedLsn() });
  }
}
