import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { CheckpointResult, SnapshotRepository } from '../../src/snapshots/repository.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { DELETE, type StateWrite } from '../../src/state/types.js';
import { SMALL_MEMTABLE, normalise, tempDir } from './snapshot-fixtures.js';

/**
 * A partition's local state for the sharing suites (snapshots.sharing "shared"): a base load
 * of incompressible values (tables as big as their values, as with real data), then small
 * churn: each round rewrites the same ten keys, which sort after the loaded ones, so a
 * checkpoint adds one small table and leaves every other table as it was. A model follows
 * every commit, and is kept for every LSN a checkpoint published.
 */
export interface ChurnRig {
  partition: string;
  /** Holds the staging folders (the state too, unless it was opened elsewhere). */
  root: string;
  state: PartitionState;
  lsn: number;
  model: Map<string, unknown>;
  /** The model at every LSN checkpointed. */
  at: Map<number, Map<string, unknown>>;
  commit(writes: Map<string, StateWrite>, lsn?: number): Promise<void>;
  /** Ten keys `z0..z9`, new values tagged `round`. */
  churn(round: number, lsn?: number): Promise<void>;
  /** `count` keys of the loaded range from `from`, new values (new tables over the loaded ones). */
  overwrite(from: number, count: number, tag: string): Promise<void>;
  checkpoint(r: SnapshotRepository): Promise<CheckpointResult>;
  close(): Promise<void>;
}

export const loadedKey = (i: number) => `k${String(i).padStart(4, '0')}`;

/** Incompressible text (hex of hashes), deterministic per seed. */
export function noise(seed: string, n: number): string {
  let s = '';
  for (let j = 0; s.length < n; j++) s += createHash('sha256').update(`${seed}:${j}`).digest('hex');
  return s.slice(0, n);
}

/** A rig over a new state folder, or over `dir` (a restored one: a fork, another node). */
export async function churnRig(partition: string, options: { dir?: string } = {}): Promise<ChurnRig> {
  const root = await tempDir(`churn-${partition}`);
  const state = await PartitionState.open(options.dir ?? join(root, 'state', partition), { writeBufferSize: SMALL_MEMTABLE, partition });
  let seq = 0;
  const rig: ChurnRig = {
    partition,
    root,
    state,
    lsn: state.appliedLsn,
    model: new Map(),
    at: new Map(),
    async commit(writes, lsn = rig.lsn + 1) {
      await state.commit(writes, lsn);
      for (const [k, v] of writes) {
        if (v === DELETE) rig.model.delete(k);
        else rig.model.set(k, normalise(v));
      }
      rig.lsn = lsn;
    },
    async churn(round, lsn) {
      await rig.commit(new Map(Array.from({ length: 10 }, (_, i) => [`z${i}`, { round, i, pad: noise(`churn ${round}/${i}`, 300) }] as const)), lsn);
    },
    async overwrite(from, count, tag) {
      await rig.commit(new Map(Array.from({ length: count }, (_, i) => [loadedKey(from + i), { tag, i, pad: noise(`${tag}/${i}`, 1000) }] as const)));
    },
    async checkpoint(r) {
      const capture = await state.capture(join(root, 'staging', `c${seq++}`));
      try {
        const result = await r.checkpoint(capture, { partition, node: 'n1', source: `embedded:${partition}` });
        rig.at.set(result.metadata.lsn, new Map(rig.model));
        return result;
      } finally {
        await capture.release();
      }
    },
    async close() {
      await state.close().catch(() => undefined);
    },
  };
  return rig;
}

/** The base load: `keys` keys of ~1 KiB in batches of 200, compacted (tables of up to 2 MiB). */
export async function loadRig(rig: ChurnRig, keys = 4000): Promise<void> {
  for (let b = 0; b * 200 < keys; b++) {
    await rig.commit(new Map(Array.from({ length: Math.min(200, keys - b * 200) }, (_, i) => [loadedKey(b * 200 + i), { b, i, pad: noise(`load ${b}/${i}`, 1000) }] as const)));
  }
  await rig.state.compactAll();
}
