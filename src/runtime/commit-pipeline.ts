import type { PartitionState } from '../state/partition-state.js';
import { DELETE, type StateWrite } from '../state/types.js';
import { copyOf } from './batch.js';

/**
 * Overlaps the LevelDB commit of one batch with applying the next. A commit runs on
 * LevelDB's own thread; waiting for it on the JS thread left that thread idle for about a
 * third of a Kafka replay. So the loop hands a batch's writes over and goes on applying the
 * next batch, whose reads see the handed-over writes first (a read-your-writes layer over
 * the committed state).
 *
 * At most one commit is in flight: handing over the next batch first waits for it, so
 * commits land in LSN order and a failed commit surfaces before anything after it is
 * committed. Everything that needs the committed state to be the applied one (a snapshot
 * capture, the end of a run, closing, replacing the state) settles the pipeline first.
 */
export class CommitPipeline {
  private pending: { writes: ReadonlyMap<string, StateWrite>; lsn: number; done: Promise<void> } | undefined;

  /** The LSN of the batch being committed, or undefined when nothing is in flight. */
  get lsn(): number | undefined {
    return this.pending?.lsn;
  }

  /** A read as the next batch must see it: the batch being committed, then the state. */
  read(state: PartitionState, key: string): Promise<unknown> {
    const pending = this.pending;
    if (pending?.writes.has(key)) {
      const v = pending.writes.get(key);
      return Promise.resolve(v === DELETE ? undefined : copyOf(v));
    }
    return state.get(key);
  }

  /**
   * Waits for the commit in flight (rethrowing its failure), then starts committing `writes`
   * at `lsn`. `writes` must not change afterwards; values are encoded before this returns.
   */
  async submit(state: PartitionState, writes: ReadonlyMap<string, StateWrite>, lsn: number, onCommitted: () => void): Promise<void> {
    await this.settle();
    const done = state.commit(writes, lsn).then(onCommitted);
    // Observed by the next submit or settle; never an unhandled rejection in between.
    done.catch(() => undefined);
    this.pending = { writes, lsn, done };
  }

  /** Waits until the state holds every handed-over batch; rethrows a failed commit once. */
  async settle(): Promise<void> {
    const pending = this.pending;
    if (!pending) return;
    try {
      await pending.done;
    } finally {
      if (this.pending === pending) this.pending = undefined;
    }
  }
}
