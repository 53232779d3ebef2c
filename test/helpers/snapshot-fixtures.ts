import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { normaliseConfig, type StoreConfig } from '../../src/core/config.js';
import { CairnError } from '../../src/core/errors.js';
import { SnapshotRepository, type CheckpointResult } from '../../src/snapshots/repository.js';
import { layout } from '../../src/snapshots/layout.js';
import { PartitionState } from '../../src/state/partition-state.js';
import type { Capture, StateWrite } from '../../src/state/types.js';
import { createStore, type CreateStoreOptions } from '../../src/store/index.js';
import type { ObjectStore } from '../../src/store/types.js';
import { makeTempDir as tempDir, removeDir } from './fixtures.js';

/** Shared plumbing of the snapshot suites: temp folders, stores, states and their contents. */

export const SMALL_MEMTABLE = 64 * 1024; // LevelDB's minimum write buffer: many small tables

/** Temp folders outside a test (the shared helpers of fixtures.ts): `tempDir(label)` makes, removeDir removes. */
export { tempDir, removeDir };

/** A normalised store config, exactly as a config file would produce it. */
export function storeConfigFor(raw: Record<string, unknown>, baseDir: string): StoreConfig {
  return normaliseConfig({ store: raw }, baseDir, 'test').store;
}

/** The embedded store under `{dir}/store`, built the way the runtime builds it. */
export function fsStore(dir: string, options: CreateStoreOptions = {}): ObjectStore {
  return createStore(storeConfigFor({ url: 'file://./store' }, dir), options);
}

export function repository(store: ObjectStore, retain: number, concurrency = 4): SnapshotRepository {
  return new SnapshotRepository(store, { retain, concurrency });
}

/** What a value looks like after the JSON round trip the state applies (-0 becomes 0, ...). */
export function normalise<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A model map as the entries PartitionState.entries() yields: UTF-8 byte order. */
export function sortedEntries(model: ReadonlyMap<string, unknown>): Array<[string, unknown]> {
  return [...model].sort(([a], [b]) => byBytes(a, b));
}

export async function entriesOf(state: PartitionState): Promise<Array<[string, unknown]>> {
  const out: Array<[string, unknown]> = [];
  for await (const e of state.entries()) out.push([e.key, e.value]);
  return out;
}

/** Opens a state folder read-only-ish, returns its applied LSN and entries, closes it. */
export async function dumpState(dir: string): Promise<{ lsn: number; entries: Array<[string, unknown]> }> {
  const state = await PartitionState.open(dir, { create: false });
  try {
    return { lsn: state.appliedLsn, entries: await entriesOf(state) };
  } finally {
    await state.close();
  }
}

/** `n` deterministic keys `k000..` with values tagged by `lsn` so every LSN's state differs. */
export function writesAt(lsn: number, n = 20, pad = 64): Map<string, StateWrite> {
  const writes = new Map<string, StateWrite>();
  for (let i = 0; i < n; i++) writes.set(`k${String((lsn * 7 + i) % 97).padStart(3, '0')}`, { lsn, i, pad: 'x'.repeat(pad) });
  return writes;
}

/** The model of `writesAt` commits applied for each LSN in `lsns` (ascending). */
export function modelOf(lsns: number[], n = 20, pad = 64): Map<string, unknown> {
  const model = new Map<string, unknown>();
  for (const lsn of lsns) for (const [k, v] of writesAt(lsn, n, pad)) model.set(k, normalise(v));
  return model;
}

/** Snapshot folders actually present under a partition (complete or not). */
export async function folders(store: ObjectStore, partition: string): Promise<string[]> {
  return store.listFolders(layout.partitionPrefix(partition));
}

export async function hasObject(store: ObjectStore, key: string): Promise<boolean> {
  try {
    await store.head(key);
    return true;
  } catch (err) {
    if (err instanceof CairnError && err.code === 'NOT_FOUND') return false;
    throw err;
  }
}

/** Names in `dir` that a restore left behind beside its target (temp or old folders). */
export async function restoreLeftovers(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.includes('.restore-') || n.includes('.old-'));
}

/**
 * One partition's local state in a temp folder, committed with `writesAt` and captured into
 * staging folders: the common ground of the snapshot suites, which differ in the store and
 * repository they checkpoint through.
 */
export interface StateRig {
  dir: string;
  state: PartitionState;
  /** LSNs committed so far, ascending. */
  readonly committed: number[];
  commitAt(lsn: number): Promise<void>;
  /** The model of every commit up to `lsn`. */
  modelAt(lsn: number): Map<string, unknown>;
  capture(): Promise<Capture>;
  /** Captures now and checkpoints through `repo`, releasing the capture afterwards. */
  checkpointNow(repo: SnapshotRepository): Promise<CheckpointResult>;
  close(): Promise<void>;
}

export async function stateRig(label: string, options: { partition?: string; n?: number; pad?: number } = {}): Promise<StateRig> {
  const partition = options.partition ?? 'p0';
  const n = options.n ?? 40;
  const pad = options.pad ?? 200;
  const dir = await tempDir(label);
  const state = await PartitionState.open(join(dir, 'state', partition), { writeBufferSize: SMALL_MEMTABLE, partition });
  const committed: number[] = [];
  let seq = 0;
  const capture = () => state.capture(join(dir, 'staging', `c${seq++}`));
  return {
    dir,
    state,
    committed,
    async commitAt(lsn) {
      await state.commit(writesAt(lsn, n, pad), lsn);
      committed.push(lsn);
    },
    modelAt: (lsn) => modelOf(committed.filter((l) => l <= lsn), n, pad),
    capture,
    async checkpointNow(repo) {
      const c = await capture();
      try {
        return await repo.checkpoint(c, { partition, node: 'n1', source: `embedded:${partition}` });
      } finally {
        await c.release();
      }
    },
    async close() {
      await state.close().catch(() => undefined);
      await removeDir(dir);
    },
  };
}
