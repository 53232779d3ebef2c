import type { CheckpointResult } from '../snapshots/repository.js';
import type { OpenedState } from './bootstrap.js';

/** Why a run returned: it reached `untilLsn`, the log's end (`stopAtEnd`), or its signal aborted. */
export type StopReason = 'until-lsn' | 'end-of-log' | 'signal';

export interface RunSummary {
  partition: string;
  /** `store`: which store a bootstrap restored from (the home store, or another of the class). */
  start: { source: OpenedState['source']; lsn: number; reason?: string; store?: string };
  appliedLsn: number;
  recordsApplied: number;
  recordsSkipped: number;
  snapshots: CheckpointResult[];
  stoppedBy: StopReason;
  /** Time in the apply loop (after the state was opened or bootstrapped), in ms. */
  durationMs: number;
  /** recordsApplied over durationMs: the replay rate, idle waits at the end of the log included. */
  recordsPerSec: number;
}

/**
 * What one run did, counted as it goes and summed up when it returns. Created once the state
 * is open, so the duration (and the rate derived from it) measures applying, not the
 * bootstrap before it, which has its own progress reporting.
 */
export class RunTally {
  private applied = 0;
  private skipped = 0;
  private readonly startedAt = performance.now();

  /** `startLsn`: the applied LSN the run starts from. */
  constructor(
    private readonly partition: string,
    private readonly opened: OpenedState,
    private readonly startLsn: number,
  ) {}

  /** A batch was applied (and handed over to commit). */
  counted(batch: { applied: number; skipped: number }): void {
    this.applied += batch.applied;
    this.skipped += batch.skipped;
  }

  /** The summary, the duration ending now: call it once the run's last snapshot has settled. */
  summary(end: { appliedLsn: number; snapshots: CheckpointResult[]; stoppedBy: StopReason }): RunSummary {
    const { opened } = this;
    const durationMs = Math.round(performance.now() - this.startedAt);
    return {
      partition: this.partition,
      start: { source: opened.source, lsn: this.startLsn, ...(opened.reason ? { reason: opened.reason } : {}), ...(opened.restore?.store ? { store: opened.restore.store } : {}) },
      appliedLsn: end.appliedLsn,
      recordsApplied: this.applied,
      recordsSkipped: this.skipped,
      snapshots: end.snapshots,
      stoppedBy: end.stoppedBy,
      durationMs,
      recordsPerSec: durationMs > 0 ? Math.round(this.applied / (durationMs / 1000)) : 0,
    };
  }
}
