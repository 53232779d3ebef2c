import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import PQueue from 'p-queue';
import { sha256File } from '../core/checksums.js';
import { CairnError, isCairnError, toCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { PartitionState } from '../state/partition-state.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { readLatest, readMetadata } from './pointer.js';
import type { RetainedEntry, SnapshotFile, SnapshotMetadata } from './schemas.js';

/**
 * Bootstrap / restore: download a snapshot beside the target, verify every byte, open it
 * once to check its applied LSN, then swap it into place by rename. A snapshot that is
 * missing or corrupt is reported and the next retained one is tried.
 */
export interface RestoreOptions {
  partition: string;
  targetDir: string;
  /** A specific snapshot; without it the latest, falling back along retained[]. */
  snapshotId?: string;
  concurrency: number;
  onProgress?: (done: number, total: number) => void;
  /** Called when a snapshot is skipped, with the reason (restore still may succeed). */
  onFallback?: (skipped: { path: string; reason: string; code: string }) => void;
  logger?: Logger;
}

export interface RestoreResult {
  metadata: SnapshotMetadata;
  bytes: number;
  durationMs: number;
  skipped: Array<{ path: string; reason: string; code: string }>;
}

export async function restoreSnapshot(store: ObjectStore, options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const candidates = await candidatesFor(store, options.partition, options.snapshotId);
  const skipped: RestoreResult['skipped'] = [];
  for (const candidate of candidates) {
    try {
      const metadata = await readMetadata(store, candidate.path);
      const bytes = await installSnapshot(store, metadata, options);
      return { metadata, bytes, durationMs: performance.now() - started, skipped };
    } catch (err) {
      const e = toCairnError(err);
      // Only damage to this snapshot justifies trying an older one; an outage does not.
      if (!isCairnError(e, 'CORRUPT') && !isCairnError(e, 'NOT_FOUND')) throw e;
      const entry = { path: candidate.path, reason: e.message, code: e.code };
      skipped.push(entry);
      options.onFallback?.(entry);
      options.logger?.warn(entry, 'snapshot unusable; falling back to the next retained snapshot');
      if (options.snapshotId) break;
    }
  }
  const reasons = skipped.map((s) => `${s.path}: ${s.reason}`).join('; ');
  throw new CairnError('NO_SNAPSHOT', `no usable snapshot for ${options.partition}${reasons ? ` (${reasons})` : ''}`, {
    details: { skipped },
  });
}

async function candidatesFor(store: ObjectStore, partition: string, snapshotId?: string): Promise<RetainedEntry[]> {
  const latest = await readLatest(store, partition);
  if (snapshotId) {
    const inPointer = latest?.pointer.retained.find((e) => e.snapshotId === snapshotId);
    if (inPointer) return [inPointer];
    const folders = await store.listFolders(layout.partitionPrefix(partition));
    const folder = folders.find((f) => f.startsWith(`${snapshotId}_`));
    if (!folder) throw new CairnError('NOT_FOUND', `snapshot ${snapshotId} of ${partition} does not exist`);
    const lsn = Number(folder.slice(snapshotId.length + 1));
    return [{ snapshotId, lsn, path: layout.snapshotPath(partition, snapshotId, lsn), createdAt: new Date(0).toISOString() }];
  }
  if (!latest) throw new CairnError('NO_SNAPSHOT', `partition ${partition} has no snapshot (no ${layout.latest(partition)})`);
  const { pointer } = latest;
  const head: RetainedEntry = { snapshotId: pointer.snapshotId, lsn: pointer.lsn, path: pointer.path, createdAt: pointer.createdAt };
  return [head, ...pointer.retained.filter((e) => e.snapshotId !== head.snapshotId)];
}

async function installSnapshot(store: ObjectStore, metadata: SnapshotMetadata, options: RestoreOptions): Promise<number> {
  const target = options.targetDir;
  await mkdir(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.${basename(target)}.restore-${randomBytes(4).toString('hex')}`);
  await mkdir(temp, { recursive: true });
  try {
    const total = metadata.files.reduce((n, f) => n + f.size, 0);
    let done = 0;
    const onBytes = (delta: number) => {
      done += delta;
      options.onProgress?.(done, total);
    };
    const queue = new PQueue({ concurrency: options.concurrency });
    // CURRENT goes last: until it exists the folder is not a database to anyone.
    const current = metadata.files.filter((f) => f.name === 'CURRENT');
    const rest = metadata.files.filter((f) => f.name !== 'CURRENT');
    await Promise.all(rest.map((f) => queue.add(() => fetchVerified(store, f, temp, onBytes))));
    for (const f of current) await fetchVerified(store, f, temp, onBytes);
    await fsyncPath(temp);

    const state = await PartitionState.open(temp, { create: false });
    const lsn = state.appliedLsn;
    await state.close();
    if (lsn !== metadata.lsn) {
      throw new CairnError('CORRUPT', `snapshot ${metadata.snapshotId} holds applied LSN ${lsn}, its metadata says ${metadata.lsn}`);
    }
    await swapInto(temp, target);
    return total;
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

async function fetchVerified(store: ObjectStore, file: SnapshotFile, dir: string, onBytes: (n: number) => void): Promise<void> {
  const path = join(dir, file.name);
  const got = await store.downloadFile(file.key, path, { onBytes, sha256: true });
  // Backends that hash in-stream spare us reading the file back.
  const { sha256, size } = got.sha256 ? { sha256: got.sha256, size: got.size } : await sha256File(path);
  if (size !== file.size) {
    throw new CairnError('CORRUPT', `${file.key}: size ${size}, expected ${file.size}`, { details: { key: file.key } });
  }
  if (sha256 !== file.sha256) {
    throw new CairnError('CORRUPT', `${file.key}: sha256 mismatch`, { details: { key: file.key, expected: file.sha256, actual: sha256 } });
  }
  await fsyncPath(path);
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `target` with `temp` by rename; the old folder is removed only after the swap. */
async function swapInto(temp: string, target: string): Promise<void> {
  const exists = await stat(target).then(
    () => true,
    () => false,
  );
  const old = `${target}.old-${randomBytes(4).toString('hex')}`;
  if (exists) await rename(target, old);
  await rename(temp, target);
  await fsyncPath(dirname(target));
  if (exists) await rm(old, { recursive: true, force: true });
}
