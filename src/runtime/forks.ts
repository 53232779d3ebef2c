import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, badInput } from '../core/errors.js';
import { diffStates, type DiffOptions, type DiffResult } from '../forks/diff.js';
import { dropFork, listForks, type DropForkResult, type ForkListing } from '../forks/fork-admin.js';
import { checkLogHolds, createFork, describeFork, parseForkSource, type CreateForkResult, type ForkDescriptor } from '../forks/fork.js';
import type { Log } from '../log/types.js';
import { pruneSnapshots, type PruneResult } from '../snapshots/prune.js';
import type { SnapshotRepository } from '../snapshots/repository.js';
import { PartitionState } from '../state/partition-state.js';
import type { ObjectStore } from '../store/types.js';
import type { PartitionProcessor, RunSummary } from './partition-processor.js';
import type { Processor } from './processor-module.js';

/** What the fork operations need from a Cairn instance. */
export interface ForkContext {
  store: ObjectStore;
  log: Log;
  snapshots: SnapshotRepository;
  stateDir: string;
  node: string;
  processor(partition: string, processor: Processor, overrides: { logPartition: string }): PartitionProcessor;
}

export interface ReplayOptions {
  /** Apply the parent's records up to this LSN (default: the log's end when replay starts). */
  toLsn?: number;
  checkpointOnExit?: boolean;
  signal?: AbortSignal;
  /**
   * For a point-in-time fork: the logic that catches it up to its target LSN, normally the
   * parent's, so the fork is the parent's state at that LSN. Default: `processor`.
   */
  catchUpProcessor?: Processor;
}

export interface ReplaySummary extends RunSummary {
  fork: string;
  log: string;
  /** Set when the fork was a point-in-time fork caught up to its target LSN first. */
  caughtUpTo?: number;
}

/**
 * Forks, replays, diffs and pruning for code embedded in workers (and for the CLI, which is
 * a thin layer over these). The apply loop of a replay is the runtime's own processor loop,
 * reading the parent's log partition into the fork's state.
 */
export class ForkOperations {
  constructor(private readonly c: ForkContext) {}

  /** `from` is `P`, `P@SNAPSHOTID` or `P@lsn:N`. */
  async create(from: string, name: string): Promise<CreateForkResult> {
    const source = parseForkSource(from);
    return createFork(this.c.store, { from: source.partition, at: source.at, name, node: this.c.node, log: this.c.log });
  }

  list(): Promise<ForkListing[]> {
    return listForks(this.c.store);
  }

  async drop(name: string): Promise<DropForkResult> {
    const result = await dropFork(this.c.store, name);
    // The local copy of a dropped fork's state is a cache of nothing: remove it too.
    await rm(join(this.c.stateDir, name), { recursive: true, force: true });
    return result;
  }

  async prune(partition: string, keep: number, dryRun = false): Promise<PruneResult> {
    const { evictionGraceMs: grace, retire } = this.c.snapshots.options;
    return pruneSnapshots(this.c.store, partition, keep, { dryRun, ...(grace !== undefined ? { evictionGraceMs: grace } : {}), ...(retire ? { retire } : {}) });
  }

  /**
   * Applies the parent's log records to the fork with `processor`. A point-in-time fork is
   * first caught up to its target LSN (and checkpointed there, so the catch-up happens once).
   */
  async replay(fork: string, processor: Processor, options: ReplayOptions = {}): Promise<ReplaySummary> {
    const desc = await describeFork(this.c.store, fork);
    const caughtUpTo = await this.catchUp(desc, options.catchUpProcessor ?? processor, options.signal);
    const runner = this.c.processor(fork, processor, { logPartition: desc.log });
    try {
      const toLsn = options.toLsn ?? (await this.c.log.info(desc.log)).end - 1;
      const summary = await runner.run({
        untilLsn: toLsn,
        stopAtEnd: true,
        ...(options.checkpointOnExit ? { checkpointOnExit: true } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return { ...summary, fork, log: desc.log, ...(caughtUpTo !== undefined ? { caughtUpTo } : {}) };
    } finally {
      await runner.close();
    }
  }

  /** A point-in-time fork's first open: up to its target LSN, then a snapshot there. */
  private async catchUp(desc: ForkDescriptor, processor: Processor, signal: AbortSignal | undefined): Promise<number | undefined> {
    const target = desc.targetLsn;
    if (target === undefined) return undefined;
    const runner = this.c.processor(desc.fork, processor, { logPartition: desc.log });
    try {
      await runner.open();
      if (runner.appliedLsn >= target) return undefined;
      await checkLogHolds(this.c.log, desc.log, runner.appliedLsn, target);
      await runner.run({ untilLsn: target, ...(signal ? { signal } : {}) });
      if (runner.appliedLsn < target) throw new CairnError('ABORTED', `fork ${desc.fork}: stopped while catching up to LSN ${target}`);
      await runner.checkpoint();
      return target;
    } finally {
      await runner.close();
    }
  }

  /**
   * Compares two snapshots (`P` for the latest, `P@SNAPSHOTID`) key by key. Each is restored
   * (and verified) into a temporary folder and read in key order; both are removed after.
   */
  async diff(a: string, b: string, options: DiffOptions = {}): Promise<DiffResult> {
    const sides = [parseSide(a), parseSide(b)];
    const dirs = sides.map((_, i) => join(this.c.stateDir, '.diff', `${process.pid}-${randomBytes(4).toString('hex')}-${i}`));
    const states: PartitionState[] = [];
    try {
      const infos = [];
      for (const [i, side] of sides.entries()) {
        const restored = await this.c.snapshots.restore({ partition: side.partition, targetDir: dirs[i]!, ...(side.snapshotId ? { snapshotId: side.snapshotId } : {}) });
        states.push(await PartitionState.open(dirs[i]!, { create: false }));
        infos.push({ partition: side.partition, snapshotId: restored.metadata.snapshotId, lsn: restored.metadata.lsn });
      }
      return await diffStates({ info: infos[0]!, entries: states[0]!.entries() }, { info: infos[1]!, entries: states[1]!.entries() }, options);
    } finally {
      for (const s of states) await s.close().catch(() => undefined);
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    }
  }
}

/** `P` or `P@SNAPSHOTID`: diff compares snapshots, so a point in time (`@lsn:N`) is refused. */
function parseSide(text: string): { partition: string; snapshotId?: string } {
  const { partition, at } = parseForkSource(text);
  if (at.kind === 'lsn') throw badInput(`diff compares snapshots: expected P or P@SNAPSHOTID, not ${JSON.stringify(text)}`);
  return { partition, ...(at.kind === 'snapshot' ? { snapshotId: at.snapshotId } : {}) };
}
