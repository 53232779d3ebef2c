import { CairnError, isCairnError, toCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { validatePartition } from '../core/names.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { listSnapshotFolders, readMetadata, readPins, readPointerStatus, type PointerStatus, type SnapshotFolder } from './pointer.js';
import { putPointer } from './pointer-update.js';
import { latestSchema, toRetainedEntry, type LatestPointer, type RetainedEntry } from './schemas.js';
import { verifySnapshot, type VerifyProblem, type VerifyReport } from './verify.js';

/**
 * `cairn pointer rebuild`: writes `{partition}/latest.json` again from the snapshot folders
 * alone, for when the pointer is garbage (or lags behind a snapshot that was uploaded but
 * never published). Only complete folders whose every file verifies (size and sha256) are
 * used; the pointer is written by conditional PUT against the object read at the start, so a
 * concurrent checkpoint or repair is never clobbered, and a parsable pointer never moves to a
 * lower LSN. Nothing is ever deleted here.
 */
export interface RebuildOptions {
  /** Snapshots kept in retained[] (the new head included), as `snapshots.retain`. */
  retain: number;
  /** Write the pointer; without it, only say what would be written. */
  apply?: boolean;
  /** Parallel reads while verifying one snapshot. */
  concurrency: number;
  logger?: Logger;
}

export interface RebuildConsidered {
  path: string;
  snapshotId: string;
  lsn: number;
  /** Complete and every file verified. */
  ok: boolean;
  /** Why it was rejected (when not ok). */
  reason?: string;
  /** The files that failed verification (when it was rejected for them). */
  problems?: VerifyProblem[];
  /** Forks that pin this snapshot (it stays in retained[] beyond the retain count). */
  pinnedBy?: string[];
}

export interface RebuildResult {
  partition: string;
  dryRun: boolean;
  /** `rebuild`: the pointer below is (or would be) written; `nothing-to-do`: it is the current one, already right. */
  status: 'rebuild' | 'nothing-to-do';
  /** latest.json as found at the start of the rebuild. */
  current: PointerStatus;
  /** What is written (or would be, in a dry run); with `nothing-to-do`, the current pointer. */
  pointer: LatestPointer;
  considered: RebuildConsidered[];
  written: boolean;
}

/** Newest first: by LSN, then by snapshot id (ULIDs sort by creation time). */
function newestFirst(a: { lsn: number; snapshotId: string }, b: { lsn: number; snapshotId: string }): number {
  return b.lsn - a.lsn || (a.snapshotId < b.snapshotId ? 1 : a.snapshotId > b.snapshotId ? -1 : 0);
}

function describeProblems(report: VerifyReport): string {
  const shown = report.problems.slice(0, 3).map((p) => `${p.name}: ${p.problem === 'missing' ? 'missing' : `${p.problem} mismatch`}`);
  const more = report.problems.length > shown.length ? ` (and ${report.problems.length - shown.length} more)` : '';
  return `failed verification: ${shown.join(', ')}${more}`;
}

/** Reads and verifies one snapshot folder; never throws for damage to the snapshot itself. */
async function check(store: ObjectStore, folder: SnapshotFolder, concurrency: number): Promise<{ ok: true; entry: RetainedEntry } | { ok: false; reason: string; problems?: VerifyProblem[] }> {
  try {
    const meta = await readMetadata(store, folder.path);
    const report = await verifySnapshot(store, meta, concurrency);
    if (!report.ok) return { ok: false, reason: describeProblems(report), problems: report.problems };
    return { ok: true, entry: toRetainedEntry(meta, folder.path) };
  } catch (err) {
    const e = toCairnError(err);
    if (e.code === 'NOT_FOUND') return { ok: false, reason: `incomplete: no metadata.json (an interrupted upload, or one still in progress)` };
    if (e.code === 'CORRUPT') return { ok: false, reason: `unreadable metadata: ${e.message}` };
    throw e; // an outage is not a verdict on the snapshot
  }
}

export async function rebuildPointer(store: ObjectStore, partition: string, options: RebuildOptions): Promise<RebuildResult> {
  validatePartition(partition);
  const { retain, concurrency } = options;
  if (!Number.isSafeInteger(retain) || retain < 1) throw new CairnError('BAD_INPUT', `invalid retain ${retain}: expected a positive integer`);
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new CairnError('BAD_INPUT', `invalid concurrency ${concurrency}: expected a positive integer`);
  const dryRun = !options.apply;
  const key = layout.latest(partition);

  // The pointer first, pins after: a fork that pins a snapshot after this read also rewrites
  // latest.json, so our conditional PUT fails instead of dropping its snapshot.
  const current = await readPointerStatus(store, partition);
  const currentPointer = current.read?.pointer;
  const pins = await readPins(store, partition);
  // Between snapshots of the same LSN, the one the current pointer names comes first, so a
  // pointer that is right is never swapped for an equivalent one.
  const isCurrent = (f: { snapshotId: string }) => Number(f.snapshotId === currentPointer?.snapshotId);
  const order = (a: SnapshotFolder | RetainedEntry, b: SnapshotFolder | RetainedEntry) => b.lsn - a.lsn || isCurrent(b) - isCurrent(a) || newestFirst(a, b);
  const folders = (await listSnapshotFolders(store, partition)).sort(order);

  const considered: RebuildConsidered[] = [];
  const verified: RetainedEntry[] = [];
  const record = (folder: SnapshotFolder, verdict: Awaited<ReturnType<typeof check>>): void => {
    const pinnedBy = pins.get(folder.path);
    considered.push({
      path: folder.path,
      snapshotId: folder.snapshotId,
      lsn: folder.lsn,
      ok: verdict.ok,
      ...(verdict.ok ? {} : { reason: verdict.reason, ...(verdict.problems ? { problems: verdict.problems } : {}) }),
      ...(pinnedBy ? { pinnedBy: [...pinnedBy].sort() } : {}),
    });
    if (verdict.ok) verified.push(verdict.entry);
  };

  let nothingToDo = false;
  const seen = new Set<string>();
  for (const folder of folders) {
    if (verified.length >= retain) break;
    seen.add(folder.path);
    const verdict = await check(store, folder, concurrency);
    record(folder, verdict);
    if (!verdict.ok) {
      options.logger?.warn({ partition, path: folder.path, reason: verdict.reason }, 'snapshot rejected while rebuilding the pointer');
      continue;
    }
    if (verified.length === 1 && currentPointer) {
      const head = verified[0]!;
      if (head.lsn < currentPointer.lsn) {
        throw new CairnError(
          'CONDITION_FAILED',
          `refusing to move ${key} backwards: it points at LSN ${currentPointer.lsn} (${currentPointer.path}), but the newest snapshot that verifies is at LSN ${head.lsn} (${head.path}); ` +
            'a restore without --snapshot already falls back along retained[] by itself',
          { details: { refused: 'backwards', currentLsn: currentPointer.lsn, newestVerifiedLsn: head.lsn, considered } },
        );
      }
      // Already pointing at the newest snapshot that verifies: the pointer is right, leave it.
      if (head.snapshotId === currentPointer.snapshotId) {
        nothingToDo = true;
        break;
      }
    }
  }

  if (nothingToDo) {
    return { partition, dryRun, status: 'nothing-to-do', current: current.status, pointer: currentPointer!, considered, written: false };
  }
  if (verified.length === 0) {
    throw new CairnError('NO_SNAPSHOT', `no snapshot folder of ${partition} is complete and verifies; ${key} left as it is`, { details: { considered } });
  }

  // Pinned snapshots stay in retained[] whatever the retain count, as every checkpoint keeps them.
  for (const folder of folders) {
    if (seen.has(folder.path) || !pins.has(folder.path)) continue;
    seen.add(folder.path);
    const verdict = await check(store, folder, concurrency);
    record(folder, verdict);
    if (!verdict.ok) options.logger?.warn({ partition, path: folder.path, reason: verdict.reason }, 'pinned snapshot rejected while rebuilding the pointer');
  }

  const retained = [...verified].sort(order);
  const head = retained[0]!;
  const next: LatestPointer = { format: 1, partition, snapshotId: head.snapshotId, lsn: head.lsn, path: head.path, createdAt: head.createdAt, retained };
  const checked = latestSchema.safeParse(next);
  if (!checked.success) throw new CairnError('INTERNAL', `rebuilt pointer of ${partition} does not validate: ${checked.error.message}`);

  if (dryRun) return { partition, dryRun, status: 'rebuild', current: current.status, pointer: next, considered, written: false };

  try {
    // One conditional write, no retry: a pointer that changed while we verified is a reason
    // to look again, which the operator does by re-running the command.
    await putPointer(store, partition, next, current.etag);
  } catch (err) {
    if (!isCairnError(err, 'CONDITION_FAILED')) throw err;
    throw new CairnError(
      'CONDITION_FAILED',
      `${key} changed while rebuilding it (a checkpoint, a fork or another repair wrote it); nothing was written — re-run cairn pointer rebuild --partition ${partition}`,
      { cause: err, details: { key } },
    );
  }
  options.logger?.info({ partition, snapshotId: next.snapshotId, lsn: next.lsn, retained: retained.length }, 'latest.json rebuilt');
  return { partition, dryRun, status: 'rebuild', current: current.status, pointer: next, considered, written: true };
}
