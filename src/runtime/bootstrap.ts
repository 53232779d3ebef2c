import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CairnError, isCairnError } from '../core/errors.js';
import { linkOrCopy } from '../core/files.js';
import { SNAPSHOT_ID } from '../core/names.js';
import type { Logger } from '../core/logger.js';
import type { Log } from '../log/types.js';
import { coversLogStart, EMPTY_STATE_LSN, resumeLsn } from '../snapshots/coverage.js';
import type { SnapshotAccess, RestoreResult } from '../snapshots/repository.js';
import { removeAbandonedRestores } from '../snapshots/restore-workdir.js';
import { PartitionState } from '../state/partition-state.js';

/**
 * How a processor gets its starting state. Local state that opens and is not behind a trim
 * gap is used as is, without a single object-store request (the store is the source of
 * truth, local disk a cache that is usually warm). Otherwise the latest snapshot is
 * restored, provided it covers the log's start; if nothing covers it we stop and touch nothing.
 */
export type StartSource = 'local' | 'bootstrap' | 'empty';

export interface OpenedState {
  state: PartitionState;
  source: StartSource;
  /** Set when local state existed but had to be replaced, or was unusable. */
  reason?: string;
  restore?: RestoreResult;
}

export interface BootstrapContext {
  partition: string;
  /** Where its records come from (a fork's is its parent's log partition). */
  logPartition: string;
  dir: string;
  log: Log;
  repository: SnapshotAccess;
  logger: Logger;
  onProgress?: (done: number, total: number) => void;
}

async function openLocal(ctx: BootstrapContext): Promise<{ state?: PartitionState; problem?: string; damaged?: boolean }> {
  if (!existsSync(ctx.dir)) return { problem: 'no local state' };
  try {
    const state = await PartitionState.open(ctx.dir, { create: false, partition: ctx.partition });
    return { state };
  } catch (err) {
    if (isCairnError(err, 'CORRUPT')) {
      ctx.logger.error({ partition: ctx.partition, err }, 'local state is damaged; it will be replaced');
      return { problem: `local state unusable: ${err.message}`, damaged: true };
    }
    if (isCairnError(err, 'NOT_FOUND')) return { problem: `local state unusable: ${err.message}` };
    throw err;
  }
}

/**
 * The error of a node that cannot start (or go on) because the log no longer holds what it
 * needs. `needed` names the LSN the node would really replay from: with a snapshot newer
 * than its local state it would bootstrap from that snapshot and need its LSN + 1 (a fresh
 * node does not need LSN 0 when a snapshot exists); otherwise the LSN after its local state
 * (0 with none). Details also give the log start, the snapshot LSN and the local LSN.
 */
export function trimGapError(partition: string, gap: { localLsn: number | undefined; logStart: number; snapshotLsn: number | undefined }): CairnError {
  const { localLsn, logStart, snapshotLsn } = gap;
  const localNext = resumeLsn(localLsn ?? EMPTY_STATE_LSN);
  const fromSnapshot = snapshotLsn !== undefined && resumeLsn(snapshotLsn) >= localNext;
  const needed = fromSnapshot ? resumeLsn(snapshotLsn) : localNext;
  const how = fromSnapshot
    ? `after bootstrapping from the latest snapshot, at LSN ${snapshotLsn}`
    : `${localLsn === undefined ? 'with no local state' : `after its local state, at LSN ${localLsn}`}, and ${snapshotLsn === undefined ? 'no snapshot exists' : `the latest snapshot is older (LSN ${snapshotLsn})`}`;
  return new CairnError('TRIM_GAP', `trim gap on ${partition}: needs LSN ${needed} (${how}) but the log starts at ${logStart}; local state left untouched`, {
    details: { partition, needed, logStart, snapshotLsn: snapshotLsn ?? null, localLsn: localLsn ?? null },
  });
}

/** Whether a snapshot exists (`snapshotLsn` not undefined) and covers `logStart` (snapshots/coverage.ts). */
function snapshotCovers(snapshotLsn: number | undefined, logStart: number): boolean {
  return snapshotLsn !== undefined && coversLogStart(snapshotLsn, logStart);
}

/**
 * Restores the latest snapshot into ctx.dir if it covers `logStart`; else TRIM_GAP.
 * `localLsn`: the applied LSN of the local state being replaced (undefined: none), for the error.
 * `snapshotLsn`: the latest pointer's LSN as the caller just read it (every caller reads it to
 * decide whether to bootstrap at all), so the pointer is not read once more here.
 */
export async function bootstrapFromSnapshot(ctx: BootstrapContext, localLsn: number | undefined, logStart: number, snapshotLsn: number | undefined): Promise<RestoreResult> {
  if (!snapshotCovers(snapshotLsn, logStart)) throw trimGapError(ctx.partition, { localLsn, logStart, snapshotLsn });
  const result = await ctx.repository.restore({
    partition: ctx.partition,
    targetDir: ctx.dir,
    ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
  });
  // A fallback may land on an older snapshot: it must still cover the log start.
  if (!coversLogStart(result.metadata.lsn, logStart)) throw trimGapError(ctx.partition, { localLsn, logStart, snapshotLsn: result.metadata.lsn });
  ctx.logger.info({ partition: ctx.partition, lsn: result.metadata.lsn, snapshotId: result.metadata.snapshotId, bytes: result.bytes, skipped: result.skipped, store: result.store }, 'bootstrapped from snapshot');
  return result;
}

/**
 * The applied LSN of a state folder without touching it: opening LevelDB replays its log
 * into a new table and writes a new MANIFEST, CURRENT and LOG, so we open a hard-linked
 * clone instead (LevelDB only ever creates, renames and unlinks files, never rewrites one,
 * so the clone's changes stay in the clone). undefined when the folder does not open.
 */
async function peekAppliedLsn(dir: string): Promise<number | undefined> {
  const clone = join(dirname(dir), `.${basename(dir)}.peek-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(clone);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      // Not LOCK: a second fcntl lock on the same inode is released for the whole process
      // when the clone closes. Not LOG: LevelDB's own diagnostics, not state.
      if (!entry.isFile() || ['LOCK', 'LOG', 'LOG.old'].includes(entry.name)) continue;
      await linkOrCopy(join(dir, entry.name), join(clone, entry.name));
    }
    const state = await PartitionState.open(clone, { create: false });
    const lsn = state.appliedLsn;
    await state.close();
    return lsn;
  } catch (err) {
    if (isCairnError(err, 'CORRUPT') || isCairnError(err, 'NOT_FOUND')) return undefined;
    throw err;
  } finally {
    await rm(clone, { recursive: true, force: true });
  }
}

export async function openOrBootstrap(ctx: BootstrapContext): Promise<OpenedState> {
  const info = await ctx.log.info(ctx.logPartition);
  // Local state behind a gap that no snapshot covers must be left exactly as it is, so that
  // case is decided before the folder is opened (only a trimmed log can have a gap).
  if (info.start > 0 && existsSync(join(ctx.dir, 'CURRENT'))) {
    const lsn = await peekAppliedLsn(ctx.dir);
    if (lsn !== undefined && !coversLogStart(lsn, info.start)) {
      const latest = await ctx.repository.latest(ctx.partition);
      if (!snapshotCovers(latest?.pointer.lsn, info.start)) throw trimGapError(ctx.partition, { localLsn: lsn, logStart: info.start, snapshotLsn: latest?.pointer.lsn });
    }
  }
  const local = await openLocal(ctx);
  if (local.state) {
    const localLsn = local.state.appliedLsn;
    if (coversLogStart(localLsn, info.start)) return { state: local.state, source: 'local' };
    // Behind a trim gap. Decide before closing anything so an uncoverable gap changes nothing.
    const latest = await ctx.repository.latest(ctx.partition);
    if (!snapshotCovers(latest?.pointer.lsn, info.start)) {
      await local.state.close();
      throw trimGapError(ctx.partition, { localLsn, logStart: info.start, snapshotLsn: latest?.pointer.lsn });
    }
    await local.state.close();
    const restore = await bootstrapFromSnapshot(ctx, localLsn, info.start, latest?.pointer.lsn);
    const state = await PartitionState.open(ctx.dir, { create: false, partition: ctx.partition });
    return { state, source: 'bootstrap', reason: `trim gap: needed LSN ${resumeLsn(localLsn)}, log starts at ${info.start}`, restore };
  }
  const latest = await ctx.repository.latest(ctx.partition);
  if (latest) {
    const restore = await bootstrapFromSnapshot(ctx, undefined, info.start, latest.pointer.lsn);
    const state = await PartitionState.open(ctx.dir, { create: false, partition: ctx.partition });
    const gap = info.start > 0 ? `; trim gap: the log starts at ${info.start}` : '';
    return { state, source: 'bootstrap', reason: `${local.problem ?? 'no local state'}${gap}`, restore };
  }
  if (!coversLogStart(EMPTY_STATE_LSN, info.start)) throw trimGapError(ctx.partition, { localLsn: undefined, logStart: info.start, snapshotLsn: undefined });
  // No snapshot, and the whole log is there: damaged state is rebuilt by replaying all of it.
  if (local.damaged) await rm(ctx.dir, { recursive: true, force: true });
  const state = await PartitionState.open(ctx.dir, { create: true, partition: ctx.partition });
  return { state, source: 'empty', ...(local.problem ? { reason: local.problem } : {}) };
}

/** What replaceLocalState replaces, and why. */
export interface Replacement {
  /** The LSN the current state would read next. */
  needed: number;
  logStart: number;
  reason: string;
  /** Damaged state with no snapshot at all may be rebuilt from an untrimmed log; a trim gap may not. */
  discardable: boolean;
}

/**
 * Replaces a running processor's local state with the latest snapshot (a trim gap, or damage
 * found while running), provided the snapshot covers the log start — decided before `close`
 * is called, so an uncoverable gap changes nothing. Damaged state with no snapshot at all
 * (`discardable`) is rebuilt from an untrimmed log. Returns the new state and its snapshot LSN
 * (-1 when rebuilt from scratch).
 */
export async function replaceLocalState(
  ctx: BootstrapContext,
  what: Replacement,
  close: () => Promise<void>,
): Promise<{ state: PartitionState; snapshotLsn: number }> {
  const { partition, repository, logger, dir } = ctx;
  const latest = await repository.latest(partition);
  const fromScratch = !latest && coversLogStart(EMPTY_STATE_LSN, what.logStart) && what.discardable;
  if (!fromScratch && !snapshotCovers(latest?.pointer.lsn, what.logStart)) {
    throw trimGapError(partition, { localLsn: what.needed - 1, logStart: what.logStart, snapshotLsn: latest?.pointer.lsn });
  }
  await close();
  if (fromScratch) {
    await rm(dir, { recursive: true, force: true });
    logger.warn({ partition, reason: what.reason }, 'no snapshot exists: replaying the whole log into fresh state');
    return { state: await PartitionState.open(dir, { create: true, partition }), snapshotLsn: -1 };
  }
  const restore = await bootstrapFromSnapshot(ctx, what.needed - 1, what.logStart, latest?.pointer.lsn);
  logger.warn({ partition, reason: what.reason, lsn: restore.metadata.lsn }, 'local state replaced by the latest snapshot; replaying the log from there');
  return { state: await PartitionState.open(dir, { create: false, partition }), snapshotLsn: restore.metadata.lsn };
}

/**
 * What a worker killed mid-way leaves behind: staged captures (hard links that pin old
 * tables on disk), trim-gap peeks beside the state folder and abandoned restores
 * (restore-workdir.ts). Called by the processor that now holds the partition, so none is in
 * use. Only names no partition can have (a ULID suffix, a leading dot) are touched.
 */
export async function removeLeftovers(stateDir: string, partition: string): Promise<void> {
  const root = join(stateDir, '.staging');
  const prefix = `${partition}-`;
  const staged = (await readdir(root).catch(() => [] as string[])).filter((n) => n.startsWith(prefix) && SNAPSHOT_ID.test(n.slice(prefix.length)));
  const peek = `.${partition}.peek-`;
  const beside = (await readdir(stateDir).catch(() => [] as string[])).filter((n) => n.startsWith(peek) && /^[0-9a-f]{8}$/.test(n.slice(peek.length)));
  await Promise.all([...staged.map((n) => join(root, n)), ...beside.map((n) => join(stateDir, n))].map((path) => rm(path, { recursive: true, force: true })));
  await removeAbandonedRestores(join(stateDir, partition), { owned: true });
}
