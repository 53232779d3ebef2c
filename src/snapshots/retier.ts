import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import PQueue from 'p-queue';
import { sha256File } from '../core/checksums.js';
import { CairnError, isCairnError, toCairnError, type ErrorCode } from '../core/errors.js';
import { newSnapshotId } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import { validatePartition } from '../core/names.js';
import { captureOf, type Capture } from '../state/types.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { readLatest } from './pointer.js';
import { type PartitionPlacement, type PlacedStore, type Placement } from './placement.js';
import { metadataSchema, parseDocument, type SnapshotMetadata } from './schemas.js';
import { sweepFolders, readableSnapshots, referencedKeys } from './sweep.js';

/**
 * Bringing stored snapshots in line with their storage class (README, "Storage classes and
 * regions"): after a store of the class missed checkpoints (`cairn replicate`), after a
 * partition changed class (`cairn class set`), after a class was redefined (`cairn retier`).
 *
 * Order keeps every reader safe:
 * 1. every store of the class gets the newest snapshot (a restore from a store that has it,
 *    then a checkpoint of those verified files into the store that lacks it: tables that
 *    store already holds are copied server-side, the rest uploaded);
 * 2. in every store of the class, each object of each retained snapshot takes the class's S3
 *    storage class by a copy onto itself (the key never changes, so latest.json never points
 *    at a missing object, and a restore running meanwhile reads whole objects), and
 *    metadata.json records the class's name;
 * 3. only then do stores that left the class lose the partition: latest.json first (no
 *    reader is sent there any more), then the snapshot folders, except what forks pin.
 */
export interface AlignOptions {
  node: string;
  /** snapshots.retire: what leaving a store does to the objects (sweep.ts). */
  retire?: 'delete' | 'tag';
  /** Where verified files of a snapshot are staged on their way to another store. */
  stagingDir: string;
  logger: Logger;
  concurrency: number;
}

export type StoreAlignment =
  | { store: string; role: 'member'; replicated: { snapshotId: string; lsn: number } | null; reclassed: number; lsn: number | null }
  | { store: string; role: 'former'; removed: number; kept: number }
  | { store: string; role: 'member' | 'former'; failed: { code: ErrorCode; message: string } };

export interface AlignReport {
  partition: string;
  className: string;
  stores: StoreAlignment[];
  /** Every store of the class holds the newest snapshot, in the class's S3 storage class. */
  aligned: boolean;
}

/** Steps 1–3 above for one partition. A store that fails is reported; the others go on. */
export async function alignPartition(placement: Placement, partition: string, options: AlignOptions & { replicateOnly?: boolean }): Promise<AlignReport> {
  validatePartition(partition);
  const placed = await placement.placementOf(partition);
  const newest = await placement.latest(partition);
  // Nothing stored yet: nothing to move (a class set now still decides where the first snapshot goes).
  if (!newest) return { partition, className: placed.className, stores: [], aligned: true };
  const members: StoreAlignment[] = [];
  for (const store of placed.stores) {
    try {
      const replicated = await replicateInto(placement, placed, store, newest.store, newest.pointer.lsn, options);
      const reclassed = options.replicateOnly ? 0 : await reclass(store, placed, options);
      const lsn = (await readLatest(store.repository.store, partition))?.pointer.lsn ?? null;
      members.push({ store: store.name, role: 'member', replicated, reclassed, lsn });
    } catch (err) {
      const e = toCairnError(err);
      options.logger.warn({ partition, store: store.name, err: e.message }, 'store not aligned with its class');
      members.push({ store: store.name, role: 'member', failed: { code: e.code, message: e.message } });
    }
  }
  const aligned = members.every((m) => 'lsn' in m && m.lsn === newest.pointer.lsn);
  const formers: StoreAlignment[] = [];
  // Leaving stores are emptied only once every member holds the newest snapshot.
  if (aligned && !options.replicateOnly) {
    const memberNames = new Set(placed.stores.map((s) => s.name));
    for (const store of placement.allStores().filter((s) => !memberNames.has(s.name))) {
      try {
        const r = await removeFrom(store, partition, options);
        if (r) formers.push({ store: store.name, role: 'former', ...r });
      } catch (err) {
        const e = toCairnError(err);
        formers.push({ store: store.name, role: 'former', failed: { code: e.code, message: e.message } });
      }
    }
  }
  return { partition, className: placed.className, stores: [...members, ...formers], aligned };
}

/**
 * Copies into `target` the source store's retained snapshots newer than its own latest,
 * oldest first, so it ends up retaining what the source retains. Returns the newest copied.
 */
async function replicateInto(
  placement: Placement,
  placed: PartitionPlacement,
  target: PlacedStore,
  sourceName: string,
  lsn: number,
  options: AlignOptions,
): Promise<{ snapshotId: string; lsn: number } | null> {
  const own = await readLatest(target.repository.store, placed.partition);
  if (own && own.pointer.lsn >= lsn) return null;
  const source = placement.allStores().find((s) => s.name === sourceName)!;
  const pointer = (await readLatest(source.repository.store, placed.partition))?.pointer;
  const missing = (pointer?.retained ?? []).filter((e) => e.lsn > (own?.pointer.lsn ?? -1)).sort((a, b) => a.lsn - b.lsn);
  let copied: { snapshotId: string; lsn: number } | null = null;
  for (const entry of missing) {
    if (await copySnapshot(source, target, placed, entry.snapshotId, options)) copied = { snapshotId: entry.snapshotId, lsn: entry.lsn };
  }
  return copied;
}

/** One snapshot from `source` to `target`, under its own id; false when the target moved past it meanwhile. */
async function copySnapshot(source: PlacedStore, target: PlacedStore, placed: PartitionPlacement, snapshotId: string, options: AlignOptions): Promise<boolean> {
  const meta = await source.repository.metadata(placed.partition, snapshotId);
  const work = join(options.stagingDir, `${placed.partition}-${newSnapshotId()}`);
  try {
    // Every byte checked against the recorded sha256: nothing unverified reaches another region.
    await downloadVerified(source.repository.store, meta, work, options.concurrency);
    const capture: Capture = captureOf({
      dir: work,
      lsn: meta.lsn,
      files: meta.files.map((f) => ({ name: f.name, path: join(work, f.name), size: f.size })),
      syncPauseMs: 0,
      tableHashes: new Map(meta.files.map((f) => [`${f.name}:${f.size}`, f.sha256])),
      release: () => rm(work, { recursive: true, force: true }),
    });
    const result = await target.repository.checkpoint(capture, {
      partition: placed.partition,
      node: options.node,
      source: meta.source,
      snapshotId,
      storageClass: placed.className,
      ...(placed.definition.s3StorageClass ? { s3StorageClass: placed.definition.s3StorageClass } : {}),
    });
    options.logger.info({ partition: placed.partition, from: source.name, to: target.name, lsn: meta.lsn, status: result.status }, 'snapshot replicated');
    return result.status === 'published';
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The snapshot's files, byte for byte, into `dir` (a restore would not do: opening the
 * state to check its LSN rewrites its MANIFEST), each checked against its recorded size
 * and sha256 (CORRUPT otherwise).
 */
async function downloadVerified(store: ObjectStore, meta: SnapshotMetadata, dir: string, concurrency: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const queue = new PQueue({ concurrency });
  await Promise.all(
    meta.files.map((f) =>
      queue.add(async () => {
        const path = join(dir, f.name);
        const got = await store.downloadFile(f.key, path, { sha256: true });
        const sha256 = got.sha256 ?? (await sha256File(path)).sha256;
        if (got.size !== f.size || sha256 !== f.sha256) {
          throw new CairnError('CORRUPT', `${f.key}: ${got.size} bytes with sha256 ${sha256}, recorded ${f.size} bytes with ${f.sha256}`, { details: { key: f.key } });
        }
      }),
    ),
  );
}

/**
 * Every object of every retained snapshot of `store` in the class's S3 storage class, and
 * each metadata.json naming the class and the objects' current ETags (a copy can change an
 * ETag, e.g. of an object uploaded in parts, and later checkpoints hold copies to the
 * recorded one). Returns how many objects were rewritten.
 */
async function reclass(store: PlacedStore, placed: PartitionPlacement, options: AlignOptions): Promise<number> {
  const s = store.repository.store;
  const latest = await readLatest(s, placed.partition);
  if (!latest) return 0;
  const classes = s.capabilities.storageClasses;
  const wanted = placed.definition.s3StorageClass ?? 'STANDARD';
  const queue = new PQueue({ concurrency: options.concurrency });
  const current = new Map<string, string>();
  let rewritten = 0;
  const align = async (key: string, size: number): Promise<string> => {
    const known = current.get(key);
    if (known) return known;
    const head = await s.head(key);
    let etag = head.etag;
    if ((head.storageClass ?? 'STANDARD') !== wanted) {
      // A copy onto itself with a new class: same key, same bytes, held to the ETag we saw.
      etag = (await s.copy(key, key, { size, expect: { etag: head.etag }, storageClass: wanted })).etag;
      rewritten++;
    }
    current.set(key, etag);
    return etag;
  };
  for (const entry of latest.pointer.retained) {
    const metaKey = layout.metadata(entry.path);
    const { body, etag } = await s.get(metaKey);
    const meta = parseDocument(metadataSchema, body, metaKey);
    // Inherited files (a fork's first snapshot) are the parent snapshot's, left as they are.
    const etags = classes ? await Promise.all(meta.files.map((f) => queue.add(() => align(f.key, f.size)))) : meta.files.map((f) => f.etag);
    const files = meta.files.map((f, i) => ({ ...f, ...(etags[i] !== undefined ? { etag: etags[i] } : {}) }));
    const metaClass = classes ? ((await s.head(metaKey)).storageClass ?? 'STANDARD') : wanted;
    const stale = files.some((f, i) => f.etag !== meta.files[i]!.etag);
    if (meta.storageClass === placed.className && metaClass === wanted && !stale) continue;
    const updated: SnapshotMetadata = { ...meta, storageClass: placed.className, files };
    // Conditional: a metadata.json changed since we read it is left to the next pass.
    await s.put(metaKey, JSON.stringify(updated, null, 2), { ifMatch: etag, contentType: 'application/json', ...(classes ? { storageClass: wanted } : {}) });
    rewritten++;
  }
  return rewritten;
}

/** A store that left the partition's class: latest.json, then every folder nothing pins. */
async function removeFrom(store: PlacedStore, partition: string, options: AlignOptions): Promise<{ removed: number; kept: number } | undefined> {
  const s = store.repository.store;
  const latest = await readLatest(s, partition);
  if (!latest) return undefined;
  await s.delete([layout.latest(partition)]);
  // Forks read their pinned parent snapshots here: those stay, and what they reference.
  const pinned = await readableSnapshots(s, partition, undefined);
  const keep = await referencedKeys(s, pinned);
  const folders = [...new Set([...latest.pointer.retained, ...(latest.pointer.evicted ?? [])].map((e) => e.path))].filter((p) => !pinned.has(p));
  const swept = await sweepFolders(s, folders, keep, { logger: options.logger, ...(options.retire ? { retire: options.retire } : {}) });
  return { removed: swept.deleted.length + swept.retired.length, kept: swept.shared.length + pinned.size };
}

/** The partitions of every store, for `retier --class`. */
export async function everyPartition(placement: Placement): Promise<string[]> {
  const names = new Set<string>();
  for (const store of placement.allStores()) {
    try {
      for (const p of await store.repository.partitions()) names.add(p);
    } catch (err) {
      if (!isCairnError(err, 'STORE_UNAVAILABLE')) throw err;
    }
  }
  return [...names].sort();
}
