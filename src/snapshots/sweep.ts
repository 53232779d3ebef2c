import { decodeTime } from 'ulid';
import { CairnError, isCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { listSnapshotFolders, readLatest, readMetadata, readPins } from './pointer.js';
import type { LatestPointer } from './schemas.js';

/**
 * The one way objects of snapshot folders are deleted once a snapshot has been published.
 *
 * Snapshots may share tables: with `snapshots.sharing: "shared"` a checkpoint references an
 * unchanged table where an earlier snapshot stored it instead of copying it into its own
 * folder, and a fork's first snapshot references its parent's. So an evicted or pruned
 * folder can hold tables that snapshots still readable depend on. Deleting goes by
 * reference, never by folder: mark every key that a readable snapshot names (its
 * metadata.json, every file, the metadata of the snapshot it inherits from), then delete
 * only unmarked objects of the folders being removed. A key is marked if any of these
 * references it:
 * - the snapshots of latest.json: `retained[]` and `evicted[]` (still within their grace);
 * - the snapshots pinned by forks (`pins/`), whose files the forks read;
 * - any other snapshot the caller keeps (prune's newest N).
 * A root whose metadata cannot be read leaves what it references unknown: nothing is
 * deleted then (CORRUPT), and the garbage waits for a pass that can tell.
 *
 * A checkpoint in flight is protected by time: sweeping skips folders younger than the grace
 * (an upload in progress), and a shared checkpoint only publishes while the snapshot it took
 * references from is still listed in latest.json (publishPointer's `requireListed`).
 */

/**
 * A folder younger than this may belong to a checkpoint still uploading: the collector and
 * prune leave it alone. It bounds how long a checkpoint may take.
 */
export const IN_FLIGHT_GRACE_MS = 60 * 60_000;

/** Every key the snapshots at `paths` need to be restored. */
export async function referencedKeys(store: ObjectStore, paths: Iterable<string>): Promise<Set<string>> {
  const keys = new Set<string>();
  const seen = new Set<string>();
  const mark = async (path: string): Promise<void> => {
    if (seen.has(path)) return;
    seen.add(path);
    keys.add(layout.metadata(path));
    let meta;
    try {
      meta = await readMetadata(store, path);
    } catch (err) {
      if (!isCairnError(err, 'NOT_FOUND') && !isCairnError(err, 'CORRUPT')) throw err;
      throw new CairnError('CORRUPT', `cannot tell which objects snapshot ${path} references (${err.message}); nothing was deleted`, { cause: err, details: { path } });
    }
    for (const f of meta.files) keys.add(f.key);
    // A fork's first snapshot reads its file list from the snapshot it inherits from.
    if (meta.inherits) await mark(meta.inherits.path);
  };
  for (const path of paths) await mark(path);
  return keys;
}

/** The snapshots of a partition that stay readable: the pointer's (retained and evicted) and the pinned ones. */
export async function readableSnapshots(store: ObjectStore, partition: string, pointer: LatestPointer | undefined): Promise<Set<string>> {
  const paths = new Set<string>();
  for (const e of pointer?.retained ?? []) paths.add(e.path);
  for (const e of pointer?.evicted ?? []) paths.add(e.path);
  for (const path of (await readPins(store, partition)).keys()) paths.add(path);
  return paths;
}

export interface SweepResult {
  /** Objects deleted (or, in a dry run, that would be). */
  deleted: string[];
  /** Objects of the swept folders kept because a readable snapshot references them. */
  shared: string[];
}

/**
 * Deletes the objects of `folders` that are not in `keep`; metadata.json of a folder first, so
 * a folder being swept is plainly incomplete to every reader. Each folder is listed whole
 * before anything of it is deleted: a failed listing deletes nothing of that folder.
 */
export async function sweepFolders(store: ObjectStore, folders: Iterable<string>, keep: ReadonlySet<string>, options: { dryRun?: boolean } = {}): Promise<SweepResult> {
  const result: SweepResult = { deleted: [], shared: [] };
  for (const folder of folders) {
    const doomed: string[] = [];
    for await (const obj of store.list(`${folder}/`)) {
      if (keep.has(obj.key)) result.shared.push(obj.key);
      else doomed.push(obj.key);
    }
    const metadata = layout.metadata(folder);
    const first = doomed.filter((k) => k === metadata);
    const rest = doomed.filter((k) => k !== metadata);
    if (!options.dryRun) {
      if (first.length > 0) await store.delete(first);
      if (rest.length > 0) await store.delete(rest);
    }
    result.deleted.push(...first, ...rest);
  }
  return result;
}

/** Removes evicted snapshots after a publish, keeping what the pointer's snapshots and pins still reference. */
export async function sweepEvicted(store: ObjectStore, partition: string, pointer: LatestPointer, evicted: readonly string[], logger?: Logger): Promise<SweepResult> {
  if (evicted.length === 0) return { deleted: [], shared: [] };
  const keep = await referencedKeys(store, await readableSnapshots(store, partition, pointer));
  const result = await sweepFolders(store, evicted, keep);
  if (result.shared.length > 0) logger?.debug({ partition, evicted, shared: result.shared.length }, 'evicted snapshots hold tables newer snapshots share; those stay');
  return result;
}

/**
 * A checkpoint's own folder once its publish failed or was superseded. Its PUT of latest.json
 * may have landed all the same (a lost response), and other writers may have published on
 * top of it since, referencing its tables ("shared") and even evicting it already: so only
 * what no readable snapshot references goes, and nothing while the pointer still lists it.
 */
export async function sweepUnpublished(store: ObjectStore, partition: string, path: string): Promise<SweepResult> {
  const latest = await readLatest(store, partition);
  const roots = await readableSnapshots(store, partition, latest?.pointer);
  if (roots.has(path)) return { deleted: [], shared: [] };
  return sweepFolders(store, [path], await referencedKeys(store, roots));
}

export interface GcResult extends SweepResult {
  partition: string;
  dryRun: boolean;
  /** Snapshots whose references were marked. */
  roots: string[];
  /** Folders looked at: not readable and older than the grace. */
  swept: string[];
}

/**
 * The collector: every snapshot folder of `partition` that no pointer entry or pin names and
 * that is older than `graceMs` (younger ones may be checkpoints in flight) loses the objects
 * nothing readable references. Refuses (deleting nothing) without a readable latest.json:
 * the roots would be a guess.
 */
export async function collectGarbage(store: ObjectStore, partition: string, options: { graceMs: number; dryRun?: boolean; now?: number; logger?: Logger }): Promise<GcResult> {
  const now = options.now ?? Date.now();
  const latest = await readLatest(store, partition);
  if (!latest) throw new CairnError('NO_SNAPSHOT', `partition ${partition} has no latest.json; the collector deletes nothing without it (rebuild it first: cairn pointer rebuild)`);
  const roots = await readableSnapshots(store, partition, latest.pointer);
  const keep = await referencedKeys(store, roots);
  const swept = (await listSnapshotFolders(store, partition)).filter((f) => !roots.has(f.path) && now - decodeTime(f.snapshotId) >= options.graceMs).map((f) => f.path);
  const result = await sweepFolders(store, swept, keep, { dryRun: Boolean(options.dryRun) });
  options.logger?.info({ partition, roots: roots.size, swept: swept.length, deleted: result.deleted.length, dryRun: Boolean(options.dryRun) }, 'garbage collected');
  return { partition, dryRun: Boolean(options.dryRun), roots: [...roots], swept, ...result };
}
