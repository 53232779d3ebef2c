import type { ObjectStore } from '../../src/store/types.js';

/**
 * An oracle of what snapshots reference, for the sharing suites (snapshots.sharing "shared",
 * the collector, prune by reference). It reads latest.json, pins and metadata.json as plain
 * JSON through the bare ObjectStore calls, with none of the snapshot code under test
 * (src/snapshots/*): so a bug in that code cannot hide itself from the checks.
 */

/** A snapshot folder name: `{ULID}_{lsn}`. */
const FOLDER = /^[0-9A-HJKMNP-TV-Z]{26}_(0|[1-9][0-9]*)$/;

export interface RawFile {
  name: string;
  size: number;
  sha256: string;
  key: string;
}

export interface RawMetadata {
  partition: string;
  snapshotId: string;
  lsn: number;
  inherits?: { path: string };
  files: RawFile[];
  stats: { uploadedBytes: number; copiedBytes: number; referencedBytes: number };
}

export interface RawEntry {
  snapshotId: string;
  lsn: number;
  path: string;
}

export interface RawPointer {
  snapshotId: string;
  lsn: number;
  path: string;
  retained: RawEntry[];
  evicted?: Array<RawEntry & { evictedAt: string }>;
}

async function getJson<T>(store: ObjectStore, key: string): Promise<T | undefined> {
  try {
    return JSON.parse((await store.get(key)).body.toString()) as T;
  } catch (err) {
    if ((err as { code?: string }).code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

export async function rawPointer(store: ObjectStore, partition: string): Promise<RawPointer | undefined> {
  return getJson<RawPointer>(store, `${partition}/latest.json`);
}

/** The pins kept under `partition` (by forks of it): fork name and pinned snapshot paths. */
export async function rawPins(store: ObjectStore, partition: string): Promise<Array<{ fork: string; snapshots: string[] }>> {
  const pins: Array<{ fork: string; snapshots: string[] }> = [];
  for await (const o of store.list(`${partition}/pins/`)) {
    const pin = await getJson<{ fork: string; snapshots: string[] }>(store, o.key);
    if (pin) pins.push(pin);
  }
  return pins;
}

/** A snapshot's own metadata.json, and its file list resolved along `inherits` (a fork's first snapshot). */
export async function rawMetadata(store: ObjectStore, path: string): Promise<{ meta: RawMetadata; files: RawFile[]; chain: string[] }> {
  const meta = await getJson<RawMetadata>(store, `${path}/metadata.json`);
  if (!meta) throw new Error(`oracle: ${path}/metadata.json is missing`);
  if (meta.inherits && meta.files.length === 0) {
    const base = await rawMetadata(store, meta.inherits.path);
    return { meta, files: base.files, chain: [path, ...base.chain] };
  }
  return { meta, files: meta.files, chain: [path] };
}

/** The snapshots of `partition` that must stay readable: latest.json's retained and evicted, and the pinned ones. */
export async function readableRoots(store: ObjectStore, partition: string): Promise<string[]> {
  const roots = new Set<string>();
  const pointer = await rawPointer(store, partition);
  for (const e of pointer?.retained ?? []) roots.add(e.path);
  for (const e of pointer?.evicted ?? []) roots.add(e.path);
  for (const pin of await rawPins(store, partition)) for (const p of pin.snapshots) roots.add(p);
  return [...roots];
}

/** Every object key the snapshots at `paths` need: their metadata.json (and along inherits) and files. */
export async function referencedBy(store: ObjectStore, paths: Iterable<string>): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const path of paths) {
    const { files, chain } = await rawMetadata(store, path);
    for (const p of chain) keys.add(`${p}/metadata.json`);
    for (const f of files) keys.add(f.key);
  }
  return keys;
}

/** Every object under the snapshot folders of `partition` (not latest.json, pins or origin.json). */
export async function snapshotObjects(store: ObjectStore, partition: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of store.list(`${partition}/`)) {
    const folder = o.key.slice(partition.length + 1).split('/')[0] ?? '';
    if (FOLDER.test(folder) && o.key.split('/').length === 3) out.set(o.key, o.size);
  }
  return out;
}

/** Every object under `prefix`, with its size: a fingerprint for "nothing was deleted" checks. */
export async function listAll(store: ObjectStore, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of store.list(prefix)) out.set(o.key, o.size);
  return out;
}

/**
 * Files of the snapshots at `paths` that are not in the store with their recorded size:
 * empty when every one of them is whole (sizes, not bytes: restores check the bytes).
 */
export async function missingFiles(store: ObjectStore, paths: Iterable<string>): Promise<string[]> {
  const missing: string[] = [];
  for (const path of paths) {
    let resolved;
    try {
      resolved = await rawMetadata(store, path);
    } catch (err) {
      missing.push(`${path}: ${(err as Error).message}`);
      continue;
    }
    for (const f of resolved.files) {
      try {
        const info = await store.head(f.key);
        if (info.size !== f.size) missing.push(`${path}: ${f.key} has ${info.size} bytes, recorded ${f.size}`);
      } catch (err) {
        if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
        missing.push(`${path}: ${f.key} is gone`);
      }
    }
  }
  return missing;
}

/** Objects under `partition`'s snapshot folders that no readable snapshot of it references. */
export async function unreferencedObjects(store: ObjectStore, partition: string): Promise<string[]> {
  const keep = await referencedBy(store, await readableRoots(store, partition));
  return [...(await snapshotObjects(store, partition)).keys()].filter((k) => !keep.has(k)).sort();
}
