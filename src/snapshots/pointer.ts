import { CairnError, isCairnError } from '../core/errors.js';
import { parseSnapshotFolderName } from '../core/ids.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { latestSchema, metadataSchema, parseDocument, pinSchema, type LatestPointer, type Pin, type SnapshotMetadata } from './schemas.js';

/**
 * latest.json is the only object Cairn ever overwrites. Reading it lives here; every update
 * goes through updatePointer (pointer-update.ts): a conditional PUT against the ETag that was
 * read, so two uploaders racing can interleave in any order and the pointer still only ever
 * moves forward in LSN.
 */
export interface PointerRead {
  pointer: LatestPointer;
  etag: string;
}

export async function readLatest(store: ObjectStore, partition: string): Promise<PointerRead | undefined> {
  const key = layout.latest(partition);
  let read: { body: Buffer; etag: string };
  try {
    read = await store.get(key);
  } catch (err) {
    if (isCairnError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
  try {
    return { pointer: parseDocument(latestSchema, read.body, key), etag: read.etag };
  } catch (err) {
    // Never overwritten silently (a writer cannot know what it held); the way back is explicit.
    if (!isCairnError(err, 'CORRUPT')) throw err;
    throw new CairnError('CORRUPT', `${err.message}; rebuild it from the snapshot folders with: cairn pointer rebuild --partition ${partition}`, {
      cause: err,
      details: { ...err.details, pointer: 'unparsable', etag: read.etag },
    });
  }
}

/** Whether `{partition}/latest.json` could be read, as listings and repairs report it. */
export interface PointerStatus {
  /** The pointer exists and parses. */
  ok: boolean;
  exists: boolean;
  /** Why it is unreadable (only when it exists and does not parse). */
  error?: string;
  snapshotId?: string;
  lsn?: number;
}

/**
 * latest.json for the readers that must go on without it: listings and `pointer rebuild`.
 * An unparsable pointer is reported in `status` (with the ETag, so a repair can replace
 * exactly that object) instead of thrown; outages still throw.
 */
export async function readPointerStatus(store: ObjectStore, partition: string): Promise<{ status: PointerStatus; read?: PointerRead; etag?: string }> {
  try {
    const read = await readLatest(store, partition);
    if (!read) return { status: { ok: false, exists: false } };
    return { status: { ok: true, exists: true, snapshotId: read.pointer.snapshotId, lsn: read.pointer.lsn }, read, etag: read.etag };
  } catch (err) {
    if (!isCairnError(err, 'CORRUPT') || err.details?.pointer !== 'unparsable') throw err;
    return { status: { ok: false, exists: true, error: err.message }, ...(typeof err.details.etag === 'string' ? { etag: err.details.etag } : {}) };
  }
}

/** A snapshot folder found in the store (complete or not). */
export interface SnapshotFolder {
  snapshotId: string;
  lsn: number;
  path: string;
}

/** The snapshot folders of a partition, as the store lists them (names that parse only). */
export async function listSnapshotFolders(store: ObjectStore, partition: string): Promise<SnapshotFolder[]> {
  const folders: SnapshotFolder[] = [];
  for (const name of await store.listFolders(layout.partitionPrefix(partition))) {
    const f = parseSnapshotFolderName(name);
    if (f) folders.push({ ...f, path: layout.snapshotPath(partition, f.snapshotId, f.lsn) });
  }
  return folders;
}

/** The folder of one snapshot by id; NOT_FOUND when there is none. */
export async function findSnapshotFolder(store: ObjectStore, partition: string, snapshotId: string): Promise<SnapshotFolder> {
  const folder = (await listSnapshotFolders(store, partition)).find((f) => f.snapshotId === snapshotId);
  if (!folder) throw new CairnError('NOT_FOUND', `snapshot ${snapshotId} of ${partition} does not exist`);
  return folder;
}

/** Fork chains deeper than this are refused as corrupt (a cycle, or a runaway chain). */
const MAX_INHERITANCE = 64;

/**
 * A snapshot's metadata with its file list resolved: a fork's first snapshot inherits the
 * files of the snapshot it forked (and that one possibly of its own parent), so each link
 * of the chain costs one GET here and none at fork time.
 */
export async function readMetadata(store: ObjectStore, snapshotPath: string, depth = 0): Promise<SnapshotMetadata> {
  const key = layout.metadata(snapshotPath);
  const { body } = await store.get(key);
  const meta = parseDocument(metadataSchema, body, key);
  if (layout.snapshotPath(meta.partition, meta.snapshotId, meta.lsn) !== snapshotPath) {
    throw new CairnError('CORRUPT', `${key} describes ${meta.partition}/${meta.snapshotId}_${meta.lsn}, not its own folder`, { details: { key } });
  }
  if (meta.inherits && meta.files.length === 0) {
    if (depth >= MAX_INHERITANCE) throw new CairnError('CORRUPT', `${key}: fork chain deeper than ${MAX_INHERITANCE}`, { details: { key } });
    const base = await readMetadata(store, meta.inherits.path, depth + 1).catch((err: unknown) => {
      if (isCairnError(err, 'NOT_FOUND')) throw new CairnError('CORRUPT', `${key} inherits the files of ${meta.inherits!.path}, which is gone`, { cause: err, details: { key } });
      throw err;
    });
    if (base.lsn !== meta.lsn) throw new CairnError('CORRUPT', `${key} inherits ${meta.inherits.path} at another LSN`, { details: { key } });
    return { ...meta, files: base.files };
  }
  return meta;
}

/** The pins under a partition: the forks that still reference its snapshots. */
export async function listPins(store: ObjectStore, partition: string): Promise<Pin[]> {
  const pins: Pin[] = [];
  for await (const obj of store.list(layout.pinsPrefix(partition))) {
    try {
      pins.push(parseDocument(pinSchema, (await store.get(obj.key)).body, obj.key));
    } catch (err) {
      if (!isCairnError(err, 'NOT_FOUND')) throw err; // dropped between the listing and the read
    }
  }
  return pins;
}

/** Fork names whose pins reference this partition's snapshots, by pinned snapshot path. */
export async function readPins(store: ObjectStore, partition: string): Promise<Map<string, Set<string>>> {
  const pinned = new Map<string, Set<string>>();
  for (const pin of await listPins(store, partition)) {
    for (const path of pin.snapshots) pinned.set(path, (pinned.get(path) ?? new Set<string>()).add(pin.fork));
  }
  return pinned;
}

/** Deletes every object under a snapshot folder. */
export async function deleteSnapshotFolder(store: ObjectStore, snapshotPath: string): Promise<void> {
  const keys: string[] = [];
  let metadataKey: string | undefined;
  for await (const obj of store.list(`${snapshotPath}/`)) {
    if (obj.key === layout.metadata(snapshotPath)) metadataKey = obj.key;
    else keys.push(obj.key);
  }
  // metadata.json goes first: a folder without it is plainly incomplete to every reader.
  if (metadataKey) await store.delete([metadataKey]);
  if (keys.length > 0) await store.delete(keys);
}
