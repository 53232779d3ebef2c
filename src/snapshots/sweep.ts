import PQueue from 'p-queue';
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
 *
 * Retiring by tag (`snapshots.retire: "tag"`): instead of deleting, the same unmarked objects
 * get the tag cairn-retired=true and a bucket lifecycle rule expires them (`cairn lifecycle`).
 * Tags mark what may expire, never what to keep: S3 lifecycle filters can only AND tags, so
 * a rule cannot say "unless tagged keep", and an object that never went through this sweep
 * (latest.json, a retained snapshot's files, anything written by a crashed process) carries
 * no tag and is never expired. Only the folder's metadata.json is really deleted, first, so
 * the folder is plainly incomplete at once: listings show it so and a pointer rebuild never
 * picks it, which would revive state that was retired (and is about to expire).
 */

/** The tag a lifecycle rule matches (exact value: filters compare values, so it is constant). */
export const RETIRED_TAG = 'cairn-retired';
/** When the object was retired, for people; lifecycle rules cannot compare times in tags. */
export const RETIRED_AT_TAG = 'cairn-retired-at';

/** How objects no readable snapshot references leave: deleted, or tagged for a lifecycle rule. */
export type RetireMode = 'delete' | 'tag';

export interface SweepOptions {
  /** Report what would happen, write nothing. */
  dryRun?: boolean;
  /** Default "delete". "tag" on a store without tags (the filesystem) deletes, with a warning. */
  retire?: RetireMode;
  logger?: Logger;
  /** The retirement time written in cairn-retired-at; default now. */
  now?: number;
}

/** Parallel PutObjectTagging requests per folder: one request per object, unlike batched deletes. */
const TAG_CONCURRENCY = 16;

/** Stores already warned about retire "tag" without tags: once per store, not once per sweep. */
const warnedUntaggable = new WeakSet<ObjectStore>();

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
  /** Objects tagged cairn-retired for the bucket's lifecycle to expire (retire "tag"; or, in a dry run, that would be). */
  retired: string[];
  /** Objects of the swept folders kept because a readable snapshot references them. */
  shared: string[];
}

const nothingSwept = (): SweepResult => ({ deleted: [], retired: [], shared: [] });

/** Whether this sweep tags; "tag" on a store without tags falls back to deleting, said once per store. */
function tagsOn(store: ObjectStore, options: SweepOptions): boolean {
  if (options.retire !== 'tag') return false;
  if (store.capabilities.tagging) return true;
  if (!warnedUntaggable.has(store)) {
    warnedUntaggable.add(store);
    options.logger?.warn({ store: store.url }, 'snapshots.retire is "tag" but this store has no object tags; retired snapshot objects are deleted instead');
  }
  return false;
}

/**
 * Retires the objects of `folders` that are not in `keep`; metadata.json of a folder first, so
 * a folder being swept is plainly incomplete to every reader. Each folder is listed whole
 * before anything of it is touched: a failed listing retires nothing of that folder.
 * Retiring is deleting, or with `retire: "tag"` deleting metadata.json and tagging the rest.
 */
export async function sweepFolders(store: ObjectStore, folders: Iterable<string>, keep: ReadonlySet<string>, options: SweepOptions = {}): Promise<SweepResult> {
  const result = nothingSwept();
  const tagging = tagsOn(store, options);
  const tags = { [RETIRED_TAG]: 'true', [RETIRED_AT_TAG]: new Date(options.now ?? Date.now()).toISOString() };
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
      if (rest.length > 0) {
        if (tagging) await tagAll(store, rest, tags);
        else await store.delete(rest);
      }
    }
    result.deleted.push(...first);
    (tagging ? result.retired : result.deleted).push(...rest);
  }
  return result;
}

/**
 * Tags every key, a few requests at a time; the first failure stops the rest and is thrown
 * (the folder is already incomplete; a later sweep tags what is left). An object gone
 * meanwhile (NOT_FOUND: another sweep, or someone else, deleted it) needs no tag.
 */
async function tagAll(store: ObjectStore, keys: string[], tags: Record<string, string>): Promise<void> {
  const queue = new PQueue({ concurrency: TAG_CONCURRENCY });
  const tagOne = async (key: string): Promise<void> => {
    try {
      await store.tag(key, tags);
    } catch (err) {
      if (isCairnError(err, 'NOT_FOUND')) return;
      queue.clear();
      throw err;
    }
  };
  await Promise.all(keys.map((key) => queue.add(() => tagOne(key))));
}

/** Removes evicted snapshots after a publish, keeping what the pointer's snapshots and pins still reference. */
export async function sweepEvicted(store: ObjectStore, partition: string, pointer: LatestPointer, evicted: readonly string[], logger?: Logger, options: { retire?: RetireMode } = {}): Promise<SweepResult> {
  if (evicted.length === 0) return nothingSwept();
  const keep = await referencedKeys(store, await readableSnapshots(store, partition, pointer));
  const result = await sweepFolders(store, evicted, keep, { ...options, ...(logger ? { logger } : {}) });
  if (result.shared.length > 0) logger?.debug({ partition, evicted, shared: result.shared.length }, 'evicted snapshots hold tables newer snapshots share; those stay');
  return result;
}

/**
 * A checkpoint's own folder once its publish failed or was superseded. Its PUT of latest.json
 * may have landed all the same (a lost response), and other writers may have published on
 * top of it since, referencing its tables ("shared") and even evicting it already: so only
 * what no readable snapshot references goes, and nothing while the pointer still lists it.
 */
export async function sweepUnpublished(store: ObjectStore, partition: string, path: string, options: { retire?: RetireMode; logger?: Logger } = {}): Promise<SweepResult> {
  const latest = await readLatest(store, partition);
  const roots = await readableSnapshots(store, partition, latest?.pointer);
  if (roots.has(path)) return nothingSwept();
  return sweepFolders(store, [path], await referencedKeys(store, roots), options);
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
export async function collectGarbage(store: ObjectStore, partition: string, options: { graceMs: number; dryRun?: boolean; now?: number; logger?: Logger; retire?: RetireMode }): Promise<GcResult> {
  const now = options.now ?? Date.now();
  const latest = await readLatest(store, partition);
  if (!latest) throw new CairnError('NO_SNAPSHOT', `partition ${partition} has no latest.json; the collector deletes nothing without it (rebuild it first: cairn pointer rebuild)`);
  const roots = await readableSnapshots(store, partition, latest.pointer);
  const keep = await referencedKeys(store, roots);
  const swept = (await listSnapshotFolders(store, partition)).filter((f) => !roots.has(f.path) && now - decodeTime(f.snapshotId) >= options.graceMs).map((f) => f.path);
  const result = await sweepFolders(store, swept, keep, {
    dryRun: Boolean(options.dryRun),
    now,
    ...(options.retire ? { retire: options.retire } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  options.logger?.info({ partition, roots: roots.size, swept: swept.length, deleted: result.deleted.length, retired: result.retired.length, dryRun: Boolean(options.dryRun) }, 'garbage collected');
  return { partition, dryRun: Boolean(options.dryRun), roots: [...roots], swept, ...result };
}
