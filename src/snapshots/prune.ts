import { decodeTime } from 'ulid';
import { CairnError, isCairnError } from '../core/errors.js';
import { validatePartition } from '../core/names.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { deleteSnapshotFolder, readPins, readPointerStatus } from './pointer.js';
import { listSnapshotsWithPointer } from './repository.js';
import type { LatestPointer } from './schemas.js';

export interface PruneResult {
  partition: string;
  dryRun: boolean;
  kept: Array<{ path: string; why: string }>;
  deleted: string[];
}

/** A folder without metadata.json younger than this may be an upload in progress. */
const INCOMPLETE_GRACE_MS = 60 * 60_000;

/**
 * Deletes old snapshot folders of a partition: all but the newest `keep` complete ones,
 * never the latest, never a pinned one (a fork needs it), and never an incomplete folder
 * young enough to be an upload in progress. Retained entries it drops leave latest.json
 * first, by conditional PUT, so no reader is pointed at a folder being deleted; a racing
 * writer (a checkpoint, a fork pinning) makes that PUT fail and the decision is taken again.
 */
export async function pruneSnapshots(
  store: ObjectStore,
  partition: string,
  keep: number,
  options: { dryRun?: boolean; now?: number; /** as the checkpoints' (PublishOptions) */ evictionGraceMs?: number } = {},
): Promise<PruneResult> {
  validatePartition(partition);
  if (!Number.isSafeInteger(keep) || keep < 1) throw new CairnError('BAD_INPUT', `invalid --keep ${keep}: expected a positive integer (the latest snapshot is always kept)`);
  const now = options.now ?? Date.now();
  // Which folders are retained is known only from the pointer: deleting by guesswork could
  // remove what a reader is about to follow.
  for (let attempt = 0; attempt < 10; attempt++) {
    const pointer = await readPointerStatus(store, partition);
    if (pointer.status.exists && !pointer.status.ok) {
      throw new CairnError(
        'CORRUPT',
        `refusing to prune ${partition}: ${pointer.status.error}, so which snapshots are retained is unknown and nothing was deleted; ` +
          `repair it first with cairn pointer rebuild --partition ${partition} --apply`,
        { details: { key: layout.latest(partition), refused: 'prune' } },
      );
    }
    const latest = pointer.read;
    const pins = await readPins(store, partition);
    // Evicted, but a restore pointed at it before may still be reading it.
    const graceUntil = new Map((latest?.pointer.evicted ?? []).map((e) => [e.path, Date.parse(e.evictedAt) + (options.evictionGraceMs ?? 0)]));
    const folders = (await listSnapshotsWithPointer(store, partition, pointer)).snapshots;
    const newest = folders.filter((f) => f.complete).sort((a, b) => b.lsn - a.lsn || b.snapshotId.localeCompare(a.snapshotId)).slice(0, keep).map((f) => f.path);
    const kept: PruneResult['kept'] = [];
    const doomed: string[] = [];
    for (const f of folders) {
      const why =
        latest?.pointer.path === f.path ? 'latest'
        : pins.has(f.path) ? `pinned by fork ${[...pins.get(f.path)!].join(', ')}`
        : newest.includes(f.path) ? `among the newest ${keep}`
        : (graceUntil.get(f.path) ?? 0) > now ? `evicted recently; kept until ${new Date(graceUntil.get(f.path)!).toISOString()} for restores that started on it`
        : !f.complete && now - decodeTime(f.snapshotId) < INCOMPLETE_GRACE_MS ? 'incomplete, may be an upload in progress'
        : undefined;
      if (why) kept.push({ path: f.path, why });
      else doomed.push(f.path);
    }
    if (options.dryRun || doomed.length === 0) return { partition, dryRun: Boolean(options.dryRun), kept, deleted: doomed };
    if (latest && [...latest.pointer.retained, ...(latest.pointer.evicted ?? [])].some((e) => doomed.includes(e.path))) {
      const evicted = latest.pointer.evicted?.filter((e) => !doomed.includes(e.path));
      const { evicted: _, ...rest } = latest.pointer;
      const next: LatestPointer = { ...rest, retained: latest.pointer.retained.filter((e) => !doomed.includes(e.path)), ...(evicted?.length ? { evicted } : {}) };
      try {
        await store.put(layout.latest(partition), JSON.stringify(next, null, 2), { ifMatch: latest.etag, contentType: 'application/json' });
      } catch (err) {
        if (isCairnError(err, 'CONDITION_FAILED')) continue;
        throw err;
      }
    }
    for (const path of doomed) await deleteSnapshotFolder(store, path);
    return { partition, dryRun: false, kept, deleted: doomed };
  }
  throw new CairnError('STORE_UNAVAILABLE', `latest.json of ${partition} kept changing while pruning; try again`, { retryable: true });
}
