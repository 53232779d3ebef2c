import { decodeTime } from 'ulid';
import { CairnError, isCairnError } from '../core/errors.js';
import { validatePartition } from '../core/names.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { readLatest, readPins } from './pointer.js';
import { IN_FLIGHT_GRACE_MS, readableSnapshots, referencedKeys, sweepFolders } from './sweep.js';
import { updatePointer, type PointerState } from './pointer-update.js';
import { listSnapshotsWithPointer } from './repository.js';
import type { LatestPointer } from './schemas.js';

export interface PruneResult {
  partition: string;
  dryRun: boolean;
  kept: Array<{ path: string; why: string }>;
  deleted: string[];
}


/**
 * Deletes old snapshot folders of a partition: all but the newest `keep` complete ones,
 * never the latest, never a pinned one (a fork needs it), and never an incomplete folder
 * young enough to be an upload in progress. Retained entries it drops leave latest.json
 * first (through updatePointer), so no reader is pointed at a folder being deleted; a racing
 * writer (a checkpoint, a fork pinning) makes that PUT fail and the decision is taken again.
 */
export async function pruneSnapshots(
  store: ObjectStore,
  partition: string,
  keep: number,
  options: {
    dryRun?: boolean;
    now?: number;
    /** as the checkpoints' (PublishOptions) */ evictionGraceMs?: number;
    /** snapshots.retire: doomed folders' objects deleted (default) or tagged for the bucket's lifecycle (sweep.ts). */
    retire?: 'delete' | 'tag';
  } = {},
): Promise<PruneResult> {
  validatePartition(partition);
  if (!Number.isSafeInteger(keep) || keep < 1) throw new CairnError('BAD_INPUT', `invalid --keep ${keep}: expected a positive integer (the latest snapshot is always kept)`);
  const now = options.now ?? Date.now();
  // Which folders are retained is known only from the pointer: deleting by guesswork could
  // remove what a reader is about to follow.
  const plan = async (current: PointerState | undefined) => {
    const pins = await readPins(store, partition);
    const latest = current?.pointer;
    // Evicted, but a restore pointed at it before may still be reading it.
    const graceUntil = new Map((latest?.evicted ?? []).map((e) => [e.path, Date.parse(e.evictedAt) + (options.evictionGraceMs ?? 0)]));
    const status = latest ? { ok: true, exists: true, snapshotId: latest.snapshotId, lsn: latest.lsn } : { ok: false, exists: false };
    const folders = (await listSnapshotsWithPointer(store, partition, { status, ...(latest ? { read: { pointer: latest, etag: current.etag ?? '' } } : {}) })).snapshots;
    const newest = folders.filter((f) => f.complete).sort((a, b) => b.lsn - a.lsn || b.snapshotId.localeCompare(a.snapshotId)).slice(0, keep).map((f) => f.path);
    const kept: PruneResult['kept'] = [];
    const doomed: string[] = [];
    for (const f of folders) {
      const why =
        latest?.path === f.path ? 'latest'
        : pins.has(f.path) ? `pinned by fork ${[...pins.get(f.path)!].join(', ')}`
        : newest.includes(f.path) ? `among the newest ${keep}`
        : (graceUntil.get(f.path) ?? 0) > now ? `evicted recently; kept until ${new Date(graceUntil.get(f.path)!).toISOString()} for restores that started on it`
        : !f.complete && now - decodeTime(f.snapshotId) < IN_FLIGHT_GRACE_MS ? 'incomplete, may be an upload in progress'
        : undefined;
      if (why) kept.push({ path: f.path, why });
      else doomed.push(f.path);
    }
    // What stays readable, and so what the doomed folders' shared tables are kept for.
    const roots = folders.filter((f) => f.complete && kept.some((k) => k.path === f.path)).map((f) => f.path);
    return { kept, doomed, roots };
  };
  try {
    if (options.dryRun) {
      const { kept, doomed } = await plan(await readLatest(store, partition));
      return { partition, dryRun: true, kept, deleted: doomed };
    }
    // Retained entries being deleted leave latest.json first, so no reader is pointed at a
    // folder being deleted; a racing writer makes that PUT fail and the plan is made again.
    const { kept, doomed, roots } = await updatePointer(store, partition, async (current) => {
      const decided = await plan(current);
      const latest = current?.pointer;
      if (!latest || ![...latest.retained, ...(latest.evicted ?? [])].some((e) => decided.doomed.includes(e.path))) return { keep: true, result: decided };
      const evicted = latest.evicted?.filter((e) => !decided.doomed.includes(e.path));
      const { evicted: _, ...rest } = latest;
      const next: LatestPointer = { ...rest, retained: latest.retained.filter((e) => !decided.doomed.includes(e.path)), ...(evicted?.length ? { evicted } : {}) };
      return { write: next, result: decided };
    });
    // Kept snapshots (and the pointer's, and pinned ones) may share tables stored in doomed
    // folders: those objects stay (sweep.ts).
    const keep = await referencedKeys(store, new Set([...roots, ...(await readableSnapshots(store, partition, (await readLatest(store, partition))?.pointer))]));
    await sweepFolders(store, doomed, keep, options.retire ? { retire: options.retire } : {});
    return { partition, dryRun: false, kept, deleted: doomed };
  } catch (err) {
    if (!isCairnError(err, 'CORRUPT') || err.details?.pointer !== 'unparsable') throw err;
    throw new CairnError(
      'CORRUPT',
      `refusing to prune ${partition}: ${err.message}, so which snapshots are retained is unknown and nothing was deleted; ` +
        `repair it first with cairn pointer rebuild --partition ${partition} --apply`,
      { cause: err, details: { key: layout.latest(partition), refused: 'prune' } },
    );
  }
}
