import { CairnError, isCairnError, toCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { GroupMembership, Log } from '../log/types.js';
import { awaitHandoff, claimOwnership, type Ownership } from '../snapshots/ownership.js';
import type { ObjectStore } from '../store/types.js';
import { LogOutage } from './log-outage.js';
import type { RuntimeMetrics } from './metrics.js';
import type { PartitionProcessor, RunSummary } from './partition-processor.js';

/**
 * A worker in a group (`cairn run --group NAME`): Kafka's group protocol decides which
 * partitions it applies (log.joinGroup), and this runs exactly those. On gaining a
 * partition it waits for the previous owner to hand over (its last snapshot published, see
 * ownership.ts; not at all when that owner is gone), claims the partition in the store,
 * and runs it like any partition (open local state when current enough, else bootstrap
 * from latest.json). On losing one it stops after the current batch and, with
 * checkpointOnRevoke, publishes a snapshot first so the next owner replays little.
 *
 * Every commitIntervalMs it commits applied LSN + 1 as the group's offset of each partition
 * it runs, so `kafka-consumer-groups --describe` shows progress and lag. The offset is for
 * people and tools only: where a partition resumes comes from local state and snapshots.
 */
export interface FleetOptions {
  group: string;
  node: string;
  log: Log;
  store: ObjectStore;
  /** A partition's runner, fenced by `ownership` (PartitionProcessorOptions.ownership). */
  runner(partition: string, ownership: Ownership): PartitionProcessor;
  sessionTimeoutMs: number;
  checkpointOnRevoke: boolean;
  commitIntervalMs: number;
  /** Longest wait for a live previous owner to publish its last snapshot before claiming anyway. */
  handoffTimeoutMs: number;
  logger: Logger;
  metrics?: RuntimeMetrics;
}

export interface FleetPartitionResult {
  partition: string;
  /** Why this worker stopped running it: it was moved away, the worker stopped, or it failed. */
  ended: 'revoked' | 'stopped' | 'fenced' | 'failed';
  summary?: RunSummary;
  error?: CairnError;
}

export interface FleetSummary {
  group: string;
  node: string;
  partitions: FleetPartitionResult[];
}

interface Running {
  runner: PartitionProcessor;
  ownership: Ownership;
  stop: AbortController;
  /** Why it was asked to stop; unset while running. */
  ending?: 'revoked' | 'stopped';
  done: Promise<FleetPartitionResult>;
  committed: number;
}

/** How often a worker compares what it runs with what the group assigns, besides each rebalance. */
const RECONCILE_EVERY_MS = 1000;

export class Fleet {
  private readonly running = new Map<string, Running>();
  /** Partitions whose start (handoff wait, claim) is under way. */
  private readonly starting = new Set<string>();
  private readonly results: FleetPartitionResult[] = [];
  /** Rebalance handling, one at a time and in order. */
  private changes: Promise<void> = Promise.resolve();
  private membership: GroupMembership | undefined;
  private failure: CairnError | undefined;
  private wake: () => void = () => undefined;

  constructor(private readonly o: FleetOptions) {
    if (!o.log.capabilities.groups || !o.log.joinGroup) {
      throw new CairnError('BAD_INPUT', `--group needs a log with consumer groups (Kafka); the ${o.log.capabilities.name} log has none: name the partitions with --partition`);
    }
  }

  /** The partitions this worker runs now, for live queries (worker-server.ts). */
  partitions(): ReadonlyMap<string, PartitionProcessor> {
    return new Map([...this.running].map(([p, entry]) => [p, entry.runner]));
  }

  /** Runs until `signal` aborts or a partition fails; then hands every partition back. */
  async run(signal: AbortSignal): Promise<FleetSummary> {
    const { group, node, sessionTimeoutMs, logger } = this.o;
    // A worker started while its broker is away waits for it, as a running one does.
    const outage = new LogOutage({ partition: `group ${group}`, logger, unavailableTimeoutMs: 0 });
    for (;;) {
      try {
        this.membership = await this.o.log.joinGroup!({ group, member: node, sessionTimeoutMs, onAssignment: () => void this.enqueue(() => this.reconcile(signal)) });
        break;
      } catch (err) {
        if (!signal.aborted && !(await outage.waitOut(err, { signal, bounded: false }))) throw err;
        if (signal.aborted) return { group, node, partitions: [] };
      }
    }
    logger.info({ group, node }, 'joined worker group');
    const committing = setInterval(() => void this.commitAll(), this.o.commitIntervalMs);
    // Also on a timer: a start skipped while the group was rebalancing is retried here.
    const reconciling = setInterval(() => void this.enqueue(() => this.reconcile(signal)), RECONCILE_EVERY_MS);
    try {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (signal.aborted || this.failure) resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      clearInterval(committing);
      clearInterval(reconciling);
      // Starts under way finish (or give up) before everything is handed back.
      while (this.starting.size > 0) await new Promise((r) => setTimeout(r, 50));
      // Hand everything back: stop (and checkpoint) each partition, commit, then leave.
      await this.enqueue(() => this.stopAll('stopped'));
      await this.membership.leave();
    }
    if (this.failure) throw this.failure;
    return { group, node, partitions: [...this.results] };
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.changes.then(work, work);
    this.changes = next.catch((err: unknown) => this.fail(toCairnError(err)));
    return this.changes;
  }

  /**
   * Brings what runs in line with what the group assigns: stops (and hands back) what this
   * worker lost, starts what it gained. Starting waits for the broker's own view of the group
   * to be stable and to name this worker as the owner, so a member that has not yet heard of
   * a rebalance cannot take a partition from the one that has; and it does not hold up the
   * queue, so a revocation is never stuck behind a handoff.
   */
  private async reconcile(signal: AbortSignal): Promise<void> {
    const assigned = this.membership!.assigned;
    await Promise.all([...this.running.keys()].filter((p) => !assigned.has(p)).map((p) => this.stopPartition(p, 'revoked')));
    if (signal.aborted) return;
    const pending = [...assigned].filter((p) => !this.running.has(p) && !this.starting.has(p));
    if (pending.length === 0) return;
    const view = await this.membership!.view();
    if (!view.stable) return; // the next tick looks again
    for (const p of pending.filter((p) => view.owners.get(p) === this.o.node)) {
      this.starting.add(p);
      void this.startPartition(p, signal)
        .catch((err: unknown) => this.o.logger.warn({ partition: p, err: toCairnError(err) }, 'could not take the partition over; will try again'))
        .finally(() => this.starting.delete(p));
    }
  }

  private async startPartition(partition: string, signal: AbortSignal): Promise<void> {
    const { store, node, group, logger, handoffTimeoutMs } = this.o;
    const started = Date.now();
    const live = async (owner: string) => (await this.membership!.view()).members.has(owner);
    const handoff = await awaitHandoff(store, partition, node, live, handoffTimeoutMs, signal);
    // The group may have moved it on while we waited.
    if (!this.membership!.assigned.has(partition) || signal.aborted) return;
    const view = await this.membership!.view();
    if (!view.stable || view.owners.get(partition) !== node) return;
    const ownership = await claimOwnership(store, partition, { node, group });
    const runner = this.o.runner(partition, ownership);
    const stop = new AbortController();
    const entry: Running = { runner, ownership, stop, committed: -1, done: Promise.resolve(undefined as never) };
    entry.done = runner.run({ signal: stop.signal, checkpointOnExit: this.o.checkpointOnRevoke }).then(
      (summary) => ({ partition, ended: entry.ending ?? 'stopped', summary }),
      (err: unknown) => this.partitionFailed(partition, entry, toCairnError(err)),
    );
    this.running.set(partition, entry);
    this.o.metrics?.ownershipChanges.inc({ change: 'gained' });
    this.o.metrics?.handoffSeconds.observe((Date.now() - started) / 1000);
    logger.info({ partition, group, epoch: ownership.epoch, handoff, waitedMs: Date.now() - started }, 'partition assigned; running');
  }

  private partitionFailed(partition: string, entry: Running, error: CairnError): FleetPartitionResult {
    if (error.code === 'FENCED') {
      // Another worker owns it now; this one carries on with the rest.
      this.o.logger.warn({ partition, err: error }, 'partition fenced: another worker owns it; dropped');
      // Still assigned here (a claim raced): the next reconcile takes it over properly.
      if (!entry.ending) void this.enqueue(() => this.stopPartition(partition, 'revoked'));
      return { partition, ended: 'fenced', error };
    }
    if (entry.ending) return { partition, ended: entry.ending, error };
    // A partition that cannot go on stops the worker, so the group moves its partitions on
    // (as a Kafka Streams thread dies on an unhandled exception).
    this.o.logger.error({ partition, err: error }, 'partition stopped; the worker leaves its group');
    this.fail(error);
    return { partition, ended: 'failed', error };
  }

  private fail(error: CairnError): void {
    this.failure ??= error;
    this.wake();
  }

  private async stopPartition(partition: string, ending: 'revoked' | 'stopped'): Promise<void> {
    const entry = this.running.get(partition);
    if (!entry) return;
    entry.ending ??= ending;
    entry.stop.abort();
    const result = await entry.done;
    const appliedLsn = entry.runner.appliedLsn;
    this.running.delete(partition);
    this.o.metrics?.partitionLag.remove({ partition });
    if (ending === 'stopped') await this.commit(partition, entry);
    await entry.runner.close().catch((err: unknown) => this.o.logger.warn({ partition, err }, 'closing partition state failed'));
    if (result.ended !== 'fenced' && this.o.checkpointOnRevoke) await entry.ownership.release().catch(() => undefined);
    this.results.push(result);
    this.o.metrics?.ownershipChanges.inc({ change: ending === 'revoked' ? 'lost' : 'stopped' });
    this.o.logger.info({ partition, ended: result.ended, appliedLsn }, 'partition handed back');
  }

  private async stopAll(ending: 'stopped'): Promise<void> {
    await Promise.all([...this.running.keys()].map((p) => this.stopPartition(p, ending)));
  }

  private async commitAll(): Promise<void> {
    await Promise.all([...this.running].map(([p, entry]) => this.commit(p, entry)));
  }

  /** Applied LSN + 1 as the group's offset; a member that lost the partition is refused (FENCED). */
  private async commit(partition: string, entry: Running): Promise<void> {
    const offset = entry.runner.appliedLsn + 1;
    await this.o.log.info(partition).then(
      ({ end }) => this.o.metrics?.partitionLag.set({ partition }, Math.max(0, end - offset)),
      () => undefined, // an outage shows in the partition's own logs; the gauge keeps its last value
    );
    if (offset <= 0 || offset === entry.committed) return;
    try {
      await this.membership!.commit(partition, offset);
      entry.committed = offset;
    } catch (err) {
      const e = toCairnError(err);
      this.o.logger[isCairnError(e, 'FENCED') ? 'info' : 'warn']({ partition, offset, err: e }, 'offset not committed');
    }
  }
}
