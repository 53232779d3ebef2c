import { existsSync } from 'node:fs';
import { CairnError, isCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Log } from '../log/types.js';
import type { SnapshotRepository, RestoreResult } from '../snapshots/repository.js';
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
  dir: string;
  log: Log;
  repository: SnapshotRepository;
  logger: Logger;
  onProgress?: (done: number, total: number) => void;
}

async function openLocal(ctx: BootstrapContext): Promise<{ state?: PartitionState; problem?: string }> {
  if (!existsSync(ctx.dir)) return { problem: 'no local state' };
  try {
    const state = await PartitionState.open(ctx.dir, { create: false, partition: ctx.partition });
    return { state };
  } catch (err) {
    if (isCairnError(err, 'CORRUPT') || isCairnError(err, 'NOT_FOUND')) return { problem: `local state unusable: ${err.message}` };
    throw err;
  }
}

export function trimGapError(partition: string, needed: number, logStart: number, snapshotLsn: number | undefined): CairnError {
  const snap = snapshotLsn === undefined ? 'no snapshot exists' : `the latest snapshot is at LSN ${snapshotLsn}`;
  return new CairnError(
    'TRIM_GAP',
    `trim gap on ${partition}: needs LSN ${needed} but the log starts at ${logStart}, and ${snap}; local state left untouched`,
    { details: { partition, needed, logStart, snapshotLsn: snapshotLsn ?? null } },
  );
}

/** Restores the latest snapshot into ctx.dir if it covers `logStart`; else TRIM_GAP. */
export async function bootstrapFromSnapshot(ctx: BootstrapContext, needed: number, logStart: number): Promise<RestoreResult> {
  const latest = await ctx.repository.latest(ctx.partition);
  const snapshotLsn = latest?.pointer.lsn;
  if (snapshotLsn === undefined || snapshotLsn + 1 < logStart) throw trimGapError(ctx.partition, needed, logStart, snapshotLsn);
  const result = await ctx.repository.restore({
    partition: ctx.partition,
    targetDir: ctx.dir,
    ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
  });
  // A fallback may land on an older snapshot: it must still cover the log start.
  if (result.metadata.lsn + 1 < logStart) throw trimGapError(ctx.partition, needed, logStart, result.metadata.lsn);
  ctx.logger.info({ partition: ctx.partition, lsn: result.metadata.lsn, snapshotId: result.metadata.snapshotId, bytes: result.bytes, skipped: result.skipped }, 'bootstrapped from snapshot');
  return result;
}

export async function openOrBootstrap(ctx: BootstrapContext): Promise<OpenedState> {
  const local = await openLocal(ctx);
  const info = await ctx.log.info(ctx.partition);
  if (local.state) {
    const next = local.state.appliedLsn + 1;
    if (next >= info.start) return { state: local.state, source: 'local' };
    // Behind a trim gap. Decide before closing anything so an uncoverable gap changes nothing.
    const latest = await ctx.repository.latest(ctx.partition);
    if (!latest || latest.pointer.lsn + 1 < info.start) {
      await local.state.close();
      throw trimGapError(ctx.partition, next, info.start, latest?.pointer.lsn);
    }
    await local.state.close();
    const restore = await bootstrapFromSnapshot(ctx, next, info.start);
    const state = await PartitionState.open(ctx.dir, { create: false, partition: ctx.partition });
    return { state, source: 'bootstrap', reason: `trim gap: needed LSN ${next}, log starts at ${info.start}`, restore };
  }
  const latest = await ctx.repository.latest(ctx.partition);
  if (latest) {
    const restore = await bootstrapFromSnapshot(ctx, 0, info.start);
    const state = await PartitionState.open(ctx.dir, { create: false, partition: ctx.partition });
    const gap = info.start > 0 ? `; trim gap: the log starts at ${info.start}` : '';
    return { state, source: 'bootstrap', reason: `${local.problem ?? 'no local state'}${gap}`, restore };
  }
  if (info.start > 0) throw trimGapError(ctx.partition, 0, info.start, undefined);
  const state = await PartitionState.open(ctx.dir, { create: true, partition: ctx.partition });
  return { state, source: 'empty', ...(local.problem ? { reason: local.problem } : {}) };
}
