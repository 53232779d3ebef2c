import PQueue from 'p-queue';
import { sha256File } from '../core/checksums.js';
import { isCairnError, toCairnError, type ErrorCode } from '../core/errors.js';
import { newSnapshotId } from '../core/ids.js';
import { badInput } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { checkTableFile } from '../state/table-check.js';
import type { Capture, CapturedFile } from '../state/types.js';
import type { CopyOptions, ObjectStore } from '../store/types.js';
import { isTableFile, layout } from './layout.js';
import { deleteSnapshotFolder, readLatest, readMetadata, type PointerRead } from './pointer.js';
import { sweepEvicted, sweepUnpublished } from './sweep.js';
import { readOrigin } from './origin.js';
import { publishPointer } from './pointer-update.js';
import { releaseUnusedPin } from './pins.js';
import { toRetainedEntry, type SnapshotFile, type SnapshotMetadata } from './schemas.js';

/**
 * The asynchronous phase of a checkpoint: move a captured file set into
 * `{partition}/{snapshotId}_{lsn}/`, copying server-side every table the previous snapshot
 * already holds, then write metadata.json and move latest.json forward.
 */
export interface CheckpointOptions {
  partition: string;
  node: string;
  source: string;
  retain: number;
  concurrency: number;
  evictionGraceMs?: number;
  /** The storage class's name, recorded in metadata.json (default STANDARD). */
  storageClass?: string;
  /** The S3 storage class this snapshot's objects are written with (the class's s3StorageClass). */
  s3StorageClass?: string;
  /** One id for the same snapshot written to several stores (placement.ts); default: a new one. */
  snapshotId?: string;
  /**
   * "copy" (default): every snapshot holds all its files, unchanged tables copied server-side.
   * "shared": an unchanged table is referenced where the previous snapshot has it (no request
   * but a HEAD), so retained snapshots cost about one state plus what changed; evicted
   * folders then lose only what nothing references (sweep.ts).
   */
  sharing?: 'copy' | 'shared';
  /** How evicted and unpublished folders' objects go: deleted (default) or tagged for the bucket's lifecycle (sweep.ts). */
  retire?: 'delete' | 'tag';
  /** sha256 by `${name}:${size}`; default: the capture's own (valid for its open database). */
  hashCache?: Map<string, string>;
  onProgress?: (done: number, total: number) => void;
  /**
   * Called after the snapshot is complete and just before latest.json moves; a throw
   * publishes nothing (e.g. FENCED: the partition is another worker's now, ownership.ts).
   */
  beforePublish?: () => Promise<void>;
  logger?: Logger;
  signal?: AbortSignal;
}

/** How the snapshot fared in one store of its class (placement.ts). */
export type StoreOutcome = { store: string; status: 'published' | 'superseded' } | { store: string; status: 'failed'; error: { code: ErrorCode; message: string } };

/**
 * `damaged`: stored objects a copy refused (no longer the recorded bytes); ours were uploaded
 * instead. `stores`: set when written through a Placement, one outcome per store of the class.
 */
export type CheckpointResult = (
  | { status: 'published'; metadata: SnapshotMetadata; evicted: string[]; damaged: Array<{ key: string; reason: string }> }
  | { status: 'superseded'; metadata: SnapshotMetadata; currentLsn: number; damaged: Array<{ key: string; reason: string }> }
) & { stores?: StoreOutcome[] };

/**
 * The sha256 a file is published under. A table is read whole once per open database and
 * its every block checked (table-check.ts) on the way: a table damaged on the local disk
 * fails the checkpoint (local-state CORRUPT) instead of being published as good state.
 */
async function hashOf(file: CapturedFile, cache: Map<string, string> | undefined): Promise<string> {
  const table = isTableFile(file.name);
  const cacheKey = `${file.name}:${file.size}`;
  const cached = table ? cache?.get(cacheKey) : undefined;
  if (cached) return cached;
  const { sha256, size } = table ? await checkTableFile(file.path) : await sha256File(file.path);
  if (size !== file.size) throw badInput(`staged file ${file.name} changed size while checkpointing`);
  if (table) cache?.set(cacheKey, sha256);
  return sha256;
}

/**
 * Checks and hashes every table of a capture once, before several stores' checkpoints of
 * it run side by side (placement.ts): each then finds its hashes in the capture's cache.
 */
export async function hashTables(capture: Capture, concurrency: number): Promise<void> {
  const queue = new PQueue({ concurrency });
  await Promise.all(capture.files.filter((f) => isTableFile(f.name)).map((f) => queue.add(() => hashOf(f, capture.tableHashes))));
}

async function previousSnapshot(store: ObjectStore, known: PointerRead | undefined, logger?: Logger): Promise<{ files: Map<string, SnapshotFile>; meta?: SnapshotMetadata }> {
  if (!known) return { files: new Map() };
  try {
    const meta = await readMetadata(store, known.pointer.path);
    return { files: new Map(meta.files.map((f) => [f.name, f])), meta };
  } catch (err) {
    // A broken previous snapshot only costs us the server-side copies; upload everything.
    logger?.warn({ err: String(err), path: known.pointer.path }, 'previous snapshot unreadable; uploading all files');
    return { files: new Map() };
  }
}

export async function checkpoint(store: ObjectStore, capture: Capture, options: CheckpointOptions): Promise<CheckpointResult> {
  const started = performance.now();
  if (capture.lsn < 0) throw badInput(`partition ${options.partition} has applied nothing yet; there is nothing to checkpoint`);
  const snapshotId = options.snapshotId ?? newSnapshotId();
  const classed = options.s3StorageClass ? { storageClass: options.s3StorageClass } : {};
  const path = layout.snapshotPath(options.partition, snapshotId, capture.lsn);
  const known = await readLatest(store, options.partition);
  const prior = await previousSnapshot(store, known, options.logger);
  // A fork of the empty state has no snapshot yet: its lineage comes from its origin.
  const origin = known ? undefined : await readOrigin(store, options.partition);
  const lineage = prior.meta?.fork ?? (origin ? { log: origin.log, createdAt: origin.createdAt } : undefined);
  const previous = prior.files;

  const total = capture.files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  const progress = (delta: number) => {
    done += delta;
    options.onProgress?.(done, total);
  };
  const stats = { uploadedBytes: 0, copiedBytes: 0, referencedBytes: 0 };
  const queue = new PQueue({ concurrency: options.concurrency });
  const files: SnapshotFile[] = [];
  let metadataWritten = false;

  const damaged: CheckpointResult['damaged'] = [];
  const transfer = async (file: CapturedFile): Promise<SnapshotFile> => {
    const sha256 = await hashOf(file, options.hashCache ?? capture.tableHashes);
    const key = layout.file(path, file.name);
    const prior = previous.get(file.name);
    // Without server-side copy a "copy" would move the bytes through this process anyway:
    // uploading from the local capture is the same work and needs no read from the store.
    const same = isTableFile(file.name) && prior && prior.size === file.size && prior.sha256 === sha256;
    const expect = same && store.capabilities.serverSideCopy ? copyCondition(store, prior) : undefined;
    if (prior && same && options.sharing === 'shared' && prior.etag !== undefined) {
      // The object must still be the one recorded; anything else and we send our own bytes.
      const found = await store.head(prior.key).catch((err: unknown) => {
        if (isCairnError(err, 'NOT_FOUND')) return undefined;
        throw err;
      });
      if (found && found.size === file.size && found.etag === prior.etag) {
        stats.referencedBytes += file.size;
        progress(file.size);
        return { name: file.name, size: file.size, sha256, key: prior.key, etag: prior.etag };
      }
      if (found) {
        damaged.push({ key: prior.key, reason: `ETag ${found.etag}, recorded ${prior.etag}` });
        options.logger?.warn({ partition: options.partition, key: prior.key }, 'stored table is not the one recorded; uploading this checkpoint its own copy');
      }
    } else if (prior && expect) {
      try {
        const { etag } = await store.copy(prior.key, key, { size: file.size, expect, ...classed });
        stats.copiedBytes += file.size;
        progress(file.size);
        return { name: file.name, size: file.size, sha256, key, etag };
      } catch (err) {
        // Evicted by a racing uploader between our read and the copy: send our own bytes.
        // Damaged (no longer the recorded bytes): never copy it forward; send ours, say so.
        if (isCairnError(err, 'CORRUPT')) {
          damaged.push({ key: prior.key, reason: err.message });
          options.logger?.warn({ partition: options.partition, key: prior.key, err: err.message }, 'stored table is damaged; uploading this checkpoint its own copy');
        } else if (!isCairnError(err, 'NOT_FOUND')) throw err;
      }
    }
    const { etag } = await store.uploadFile(key, file.path, { onBytes: progress, sha256, ...classed, ...(options.signal ? { signal: options.signal } : {}) });
    stats.uploadedBytes += file.size;
    return { name: file.name, size: file.size, sha256, key, etag };
  };

  try {
    const results = await Promise.all(capture.files.map((f) => queue.add(() => transfer(f))));
    files.push(...results.sort((a, b) => a.name.localeCompare(b.name)));
    const createdAt = new Date().toISOString();
    const metadata: SnapshotMetadata = {
      format: 1,
      partition: options.partition,
      snapshotId,
      lsn: capture.lsn,
      createdAt,
      node: options.node,
      source: options.source,
      // A fork stays a fork: its lineage (and the log it replays) passes to every snapshot.
      ...(prior.meta?.parent ? { parent: prior.meta.parent } : {}),
      ...(lineage ? { fork: { log: lineage.log, createdAt: lineage.createdAt } } : {}),
      storageClass: options.storageClass ?? 'STANDARD',
      files,
      stats: { ...stats, syncPauseMs: round(capture.syncPauseMs), durationMs: round(performance.now() - started + capture.syncPauseMs) },
    };
    // Nothing under the folder is written after metadata.json: it marks the snapshot complete.
    await store.put(layout.metadata(path), JSON.stringify(metadata, null, 2), { ifNoneMatch: '*', contentType: 'application/json', ...classed });
    metadataWritten = true;
    await options.beforePublish?.();
    // Tables referenced where the previous snapshot has them stay only while it is listed.
    const referencesPrevious = known !== undefined && files.some((f) => !f.key.startsWith(`${path}/`));
    const published = await publishPointer(store, options.partition, toRetainedEntry(metadata, path), {
      retain: options.retain,
      known,
      ...(referencesPrevious ? { requireListed: known.pointer.path } : {}),
      ...(options.evictionGraceMs !== undefined ? { evictionGraceMs: options.evictionGraceMs } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    if (published.status === 'superseded') {
      // Not necessarily never published (a lost response): see sweepUnpublished.
      await sweepUnpublished(store, options.partition, path, retiring(options)).catch((err: unknown) => {
        if (!isCairnError(err, 'CORRUPT')) throw err;
        options.logger?.warn({ partition: options.partition, path, err: err.message }, 'superseded snapshot not deleted');
      });
      return { status: 'superseded', metadata, currentLsn: published.current.lsn, damaged };
    }
    await sweepEvicted(store, options.partition, published.pointer, published.evicted.map((e) => e.path), options.logger, retiring(options)).catch((err: unknown) => {
      // Garbage left behind is collected later (cairn snapshots gc); never a reason to fail a
      // published checkpoint, whatever went wrong (an outage, an unreadable snapshot).
      options.logger?.warn({ partition: options.partition, err: toCairnError(err).message }, 'evicted snapshots not deleted; cairn snapshots gc collects them');
    });
    // Evicted snapshots still within their grace may be restored: they count as referencing too.
    if (metadata.parent) await releaseUnusedPin(store, metadata, [...published.pointer.retained, ...(published.pointer.evicted ?? [])], options.logger);
    return { status: 'published', metadata, evicted: published.evicted.map((e) => e.path), damaged };
  } catch (err) {
    queue.clear();
    await queue.onIdle().catch(() => undefined);
    if (!metadataWritten) {
      // The pointer never saw this folder: it is garbage, clean what we can.
      await deleteSnapshotFolder(store, path).catch(() => undefined);
    } else {
      // The pointer may list it, or have listed it (a publish that landed though we heard an
      // error): only what nothing readable references goes; a failed read deletes nothing.
      await sweepUnpublished(store, options.partition, path, retiring(options)).catch(() => undefined);
    }
    throw err;
  }
}

/**
 * What a copy of `prior` must be held to, on this store; undefined when the store cannot
 * check what was recorded (an ETag from before ETags were recorded): then the checkpoint
 * uploads its own bytes rather than copy an object nothing vouches for.
 */
function copyCondition(store: ObjectStore, prior: SnapshotFile): CopyOptions['expect'] | undefined {
  if (store.capabilities.copyVerifies === 'sha256') return { sha256: prior.sha256 };
  return prior.etag === undefined ? undefined : { etag: prior.etag };
}

/** The sweep options a checkpoint passes on (sweep.ts). */
function retiring(options: CheckpointOptions): { retire?: 'delete' | 'tag'; logger?: Logger } {
  return { ...(options.retire ? { retire: options.retire } : {}), ...(options.logger ? { logger: options.logger } : {}) };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
