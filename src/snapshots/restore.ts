import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import PQueue from 'p-queue';
import { sha256File } from '../core/checksums.js';
import { CairnError, badInput, isCairnError, toCairnError } from '../core/errors.js';
import { failpoint } from '../core/failpoints.js';
import type { Logger } from '../core/logger.js';
import { PartitionState } from '../state/partition-state.js';
import { inspectFolder, stateInUse, writeStateMarker } from '../state/state-folder.js';
import { runAllOrAbort } from '../store/transfer.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { findSnapshotFolder, readLatest, readMetadata, type PointerRead } from './pointer.js';
import { RestoreWorkdir } from './restore-workdir.js';
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
  /**
   * Replace the target only as `assertReplaceable` allows, checked before the download and
   * again just before the swap. Without it the target is replaced whatever it holds: a
   * processor restoring its own state folder, or a private temporary folder.
   */
  guard?: { force: boolean };
}

export interface RestoreResult {
  metadata: SnapshotMetadata;
  /** The store that served it, when reading through a Placement (several stores). */
  store?: string;
  bytes: number;
  durationMs: number;
  skipped: Array<{ path: string; reason: string; code: string }>;
}

/**
 * Rounds of "read latest.json, try its snapshots newest first". A fresh node restoring while
 * another checkpoints quickly can find every snapshot the pointer listed evicted before its
 * download ends; the pointer has then moved on, so it is read again and its newer snapshots
 * tried — files already verified are reused, so a round costs what changed. Bounded: a
 * round only follows a pointer that moved, and there are at most this many.
 */
const MAX_ROUNDS = 6;

export async function restoreSnapshot(store: ObjectStore, options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const skipped: RestoreResult['skipped'] = [];
  const damaged = new Set<string>();
  // Checked before anything is created, so a refused target leaves every folder as it was.
  if (options.guard) await assertReplaceable(options.targetDir, options.partition, options.guard.force);
  const work = await RestoreWorkdir.create(options.targetDir);
  try {
    let latest = options.snapshotId ? undefined : await readPointerToRestore(store, options.partition);
    for (let round = 1; ; round++) {
      const candidates = latest ? candidatesOf(latest) : await namedSnapshot(store, options.partition, options.snapshotId!);
      for (const candidate of candidates.filter((c) => !damaged.has(c.path))) {
        try {
          const metadata = await readMetadata(store, candidate.path);
          const bytes = await installSnapshot(store, metadata, work, options);
          return { metadata, bytes, durationMs: performance.now() - started, skipped };
        } catch (err) {
          const e = toCairnError(err);
          // Only damage to this snapshot, or its eviction, justifies trying another; an outage does not.
          if (!isCairnError(e, 'CORRUPT') && !isCairnError(e, 'NOT_FOUND')) throw e;
          if (e.code === 'CORRUPT') damaged.add(candidate.path);
          const entry = { path: candidate.path, reason: e.message, code: e.code };
          skipped.push(entry);
          options.onFallback?.(entry);
          options.logger?.warn(entry, 'snapshot unusable; falling back to the next retained snapshot');
        }
      }
      if (!latest || round >= MAX_ROUNDS) break;
      const now = await readLatest(store, options.partition);
      if (!now || now.etag === latest.etag) break; // nothing newer to try
      options.logger?.info({ partition: options.partition, round, lsn: now.pointer.lsn }, 'latest.json moved on while restoring; trying its newer snapshots');
      latest = now;
    }
  } finally {
    await work.dispose();
  }
  // The first few reasons in the message; every one of them in details.
  const reasons = skipped.slice(0, 3).map((s) => `${s.path}: ${s.reason}`).join('; ') + (skipped.length > 3 ? `; and ${skipped.length - 3} more` : '');
  throw new CairnError('NO_SNAPSHOT', `no usable snapshot for ${options.partition}${reasons ? ` (${reasons})` : ''}`, {
    details: { skipped },
  });
}

/** The snapshot asked for by id, found from its folder alone (latest.json may be unreadable). */
async function namedSnapshot(store: ObjectStore, partition: string, snapshotId: string): Promise<RetainedEntry[]> {
  const { lsn, path } = await findSnapshotFolder(store, partition, snapshotId);
  return [{ snapshotId, lsn, path, createdAt: new Date(0).toISOString() }];
}

/** latest.json for a restore without an id: unreadable or absent is the end of it. */
async function readPointerToRestore(store: ObjectStore, partition: string): Promise<PointerRead> {
  let latest: PointerRead | undefined;
  try {
    latest = await readLatest(store, partition);
  } catch (err) {
    if (!isCairnError(err, 'CORRUPT')) throw err;
    throw new CairnError('CORRUPT', `${err.message}, or restore one snapshot folder by id with: cairn restore --partition ${partition} --snapshot ID (ids: cairn snapshots list --partition ${partition})`, {
      cause: err,
      ...(err.details ? { details: err.details } : {}),
    });
  }
  if (!latest) throw new CairnError('NO_SNAPSHOT', `partition ${partition} has no snapshot (no ${layout.latest(partition)})`);
  return latest;
}

/** The pointer's snapshot, then the rest of retained[], newest first. */
function candidatesOf({ pointer }: PointerRead): RetainedEntry[] {
  const head: RetainedEntry = { snapshotId: pointer.snapshotId, lsn: pointer.lsn, path: pointer.path, createdAt: pointer.createdAt };
  return [head, ...pointer.retained.filter((e) => e.snapshotId !== head.snapshotId)];
}

async function installSnapshot(store: ObjectStore, metadata: SnapshotMetadata, work: RestoreWorkdir, options: RestoreOptions): Promise<number> {
  const dir = await work.nextAttempt();
  const total = metadata.files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  const onBytes = (delta: number) => {
    done += delta;
    options.onProgress?.(done, total);
  };
  const fetch = async (file: SnapshotFile, signal?: AbortSignal) => {
    signal?.throwIfAborted();
    const path = join(dir, file.name);
    if (await work.reuse(file.sha256, file.size, path)) return onBytes(file.size);
    await fetchVerified(store, file, path, onBytes, signal);
    await work.remember(file.sha256, path);
  };
  const queue = new PQueue({ concurrency: options.concurrency });
  // CURRENT goes last: until it exists the folder is not a database to anyone.
  const current = metadata.files.filter((f) => f.name === 'CURRENT');
  const rest = metadata.files.filter((f) => f.name !== 'CURRENT');
  // The first failure stops the others, and all have stopped writing before the caller
  // moves on to another snapshot or removes the work folder.
  await runAllOrAbort(undefined, rest, (f, signal) => queue.add(() => fetch(f, signal)));
  for (const f of current) await fetch(f);
  await fsyncPath(dir);
  failpoint('restore:downloaded');

  await assertSnapshotLsn(dir, metadata);
  await writeStateMarker(dir, options.partition);
  // Again, now that our work folder exists: a processor that opened the target since the
  // first check is seen here, and one that opens it from now on sees our work folder.
  if (options.guard) await assertReplaceable(options.targetDir, options.partition, options.guard.force);
  await swapInto(dir, options.targetDir);
  return total;
}

/**
 * Opens a downloaded snapshot's state and checks that the applied LSN stored inside it is
 * the one its metadata (and folder name) claims; CORRUPT (`details.problem: 'lsn'`) if not.
 * Restore and verify both rely on it.
 */
export async function assertSnapshotLsn(dir: string, metadata: SnapshotMetadata): Promise<void> {
  const state = await PartitionState.open(dir, { create: false });
  const lsn = state.appliedLsn;
  await state.close();
  if (lsn !== metadata.lsn) {
    throw new CairnError('CORRUPT', `snapshot ${metadata.snapshotId} holds applied LSN ${lsn}, its metadata says ${metadata.lsn}`, {
      details: { problem: 'lsn', expected: metadata.lsn, actual: lsn },
    });
  }
}

/**
 * Whether a restore may replace `target` with `partition`'s state: a missing or empty
 * folder always; a state folder of `partition` with `force`, unless a processor holds it
 * (STATE_UNAVAILABLE, whatever `force` says); anything else never (BAD_INPUT), and nothing
 * is written to find out.
 */
export async function assertReplaceable(target: string, partition: string, force: boolean): Promise<void> {
  const found = await inspectFolder(target);
  switch (found.kind) {
    case 'absent':
    case 'empty':
      return;
    case 'not-a-folder':
      throw badInput(`restore target ${target} is a file, not a folder`);
    case 'other':
      throw badInput(`restore target ${target} is not empty and is not a Cairn state folder; nothing was changed (restore into a new or empty folder)`, { dir: target });
    case 'state':
      if (found.partition !== partition) {
        throw badInput(`restore target ${target} is the state folder of partition ${found.partition}, not ${partition}; nothing was changed`, { dir: target, partition: found.partition });
      }
      if (await stateInUse(target)) {
        throw new CairnError('STATE_UNAVAILABLE', `restore target ${target} is in use by a running processor of ${partition}; stop it first (--force does not override this)`, { details: { dir: target } });
      }
      if (!force) throw badInput(`restore target ${target} holds ${partition}'s local state; pass --force to replace it`, { dir: target });
  }
}

async function fetchVerified(store: ObjectStore, file: SnapshotFile, path: string, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
  const got = await store.downloadFile(file.key, path, { onBytes, sha256: true, ...(signal ? { signal } : {}) });
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
