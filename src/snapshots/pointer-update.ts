import { sleepBackoff, type BackoffPolicy } from '../core/backoff.js';
import { CairnError, isCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { listSnapshotFolders, readLatest, readMetadata, readPins, type PointerRead } from './pointer.js';
import { toRetainedEntry, type EvictedEntry, type LatestPointer, type RetainedEntry } from './schemas.js';

/**
 * The one way `{partition}/latest.json` changes: read it, decide, write it back by
 * conditional PUT against the ETag read, and start over when someone else wrote first.
 * Publishing a snapshot, pruning, pinning a fork and repairing all go through here, so they
 * share one contention policy and one answer to a pointer that vanished.
 */

/** What an update sees: the pointer as read, or one recovered from the folders (no ETag). */
export interface PointerState {
  pointer: LatestPointer;
  /** Absent when latest.json is missing and `pointer` was recovered from the snapshot folders. */
  etag?: string;
}

/** Write `write` (and return `result`), or leave the pointer as it is and return `result`. */
export type PointerDecision<R> = { write: LatestPointer; result: R } | { keep: true; result: R };

export interface UpdatePointerOptions {
  /** The pointer read a moment ago by the caller, reused to save a GET for the first attempt. */
  known?: PointerRead | undefined;
  logger?: Logger;
}

/** Attempts before contention is reported as CONFLICT; enough for dozens of writers on one partition. */
const UPDATE_ATTEMPTS = 30;
/** Backoff between lost races: short, since the store answered; jitter spreads the writers out. */
const UPDATE_BACKOFF: BackoffPolicy = { baseDelayMs: 5, maxDelayMs: 500 };

/**
 * Every guarantee about latest.json rests on conditional writes; a store that cannot make
 * them would let two writers overwrite each other silently, so it is refused up front.
 */
export function requireConditionalWrites(store: ObjectStore): void {
  if (!store.capabilities.conditionalWrite) {
    throw new CairnError('INVALID_CONFIG', `store ${store.url} (${store.capabilities.name}) lacks the conditionalWrite capability, which latest.json needs; use a store with conditional PUT (If-Match / If-None-Match)`, {
      details: { capability: 'conditionalWrite', store: store.url },
    });
  }
}

/** The single conditional write of latest.json: against `etag`, or only-if-absent without one. */
export async function putPointer(store: ObjectStore, partition: string, next: LatestPointer, etag: string | undefined): Promise<{ etag: string }> {
  requireConditionalWrites(store);
  return store.put(layout.latest(partition), JSON.stringify(next, null, 2), {
    ...(etag !== undefined ? { ifMatch: etag } : { ifNoneMatch: '*' as const }),
    contentType: 'application/json',
  });
}

export async function updatePointer<R>(
  store: ObjectStore,
  partition: string,
  decide: (current: PointerState | undefined) => Promise<PointerDecision<R>> | PointerDecision<R>,
  options: UpdatePointerOptions = {},
): Promise<R> {
  let read: PointerRead | undefined = options.known ?? (await readLatest(store, partition));
  for (let attempt = 1; ; attempt++) {
    // latest.json gone (a lifecycle rule, a careless delete) while complete snapshots exist:
    // the update is decided against the newest of them, so a slow writer cannot create a
    // pointer older than what the store already holds.
    const current: PointerState | undefined = read ?? (await recoverFromFolders(store, partition, options.logger));
    // A recovered pointer is only decided against, never written back: the folder it names
    // may belong to a checkpoint that is about to remove it (its publish failed), and a
    // pointer to a deleted folder is worse than none. The next publish at or above it
    // creates latest.json again.
    const decision = await decide(current);
    if (!('write' in decision)) return decision.result;
    try {
      await putPointer(store, partition, decision.write, current?.etag);
      return decision.result;
    } catch (err) {
      if (!isCairnError(err, 'CONDITION_FAILED')) throw err;
      if (attempt >= UPDATE_ATTEMPTS) {
        throw new CairnError('CONFLICT', `${layout.latest(partition)} kept changing under concurrent writers; gave up after ${attempt} attempts`, {
          cause: err,
          details: { key: layout.latest(partition), attempts: attempt },
        });
      }
      options.logger?.debug({ partition, attempt }, 'latest.json changed under us; re-reading');
      await sleepBackoff(attempt, UPDATE_BACKOFF);
      read = await readLatest(store, partition);
    }
  }
}

/**
 * The pointer a missing latest.json stood for, as far as the store can tell: the newest
 * complete snapshot folder (metadata.json present and naming its own folder). Undefined when
 * there is none, i.e. the partition really has no snapshot yet. It is a bar to decide against,
 * not a list to keep: a folder that was never published may be removed by its own writer at
 * any moment (superseded, or its publish failed), so no update copies it into retained[].
 */
async function recoverFromFolders(store: ObjectStore, partition: string, logger: Logger | undefined): Promise<PointerState | undefined> {
  const folders = (await listSnapshotFolders(store, partition)).sort((a, b) => b.lsn - a.lsn || (a.snapshotId < b.snapshotId ? 1 : -1));
  for (const folder of folders) {
    try {
      const entry = toRetainedEntry(await readMetadata(store, folder.path), folder.path);
      logger?.warn({ partition, snapshotId: entry.snapshotId, lsn: entry.lsn }, 'latest.json is missing; deciding against the newest complete snapshot folder');
      return { pointer: { format: 1, partition, ...entry, retained: [entry] } };
    } catch (err) {
      // Incomplete (an upload in progress or abandoned) or unreadable: not a snapshot to point at.
      if (!isCairnError(err, 'NOT_FOUND') && !isCairnError(err, 'CORRUPT')) throw err;
    }
  }
  return undefined;
}

export type PublishResult =
  | { status: 'published'; pointer: LatestPointer; evicted: RetainedEntry[] }
  | { status: 'superseded'; current: LatestPointer };

export interface PublishOptions {
  retain: number;
  /**
   * How long an evicted snapshot stays in the store (listed in the pointer's `evicted[]`)
   * before a publish hands it back for deletion. 0 or absent: at once.
   */
  evictionGraceMs?: number;
  /** The pointer read before the upload began, reused to save a GET when nobody raced us. */
  known?: PointerRead | undefined;
  logger?: Logger;
  now?: () => number;
  /**
   * A shared checkpoint's references were taken from this snapshot: it publishes only while
   * the pointer still lists it (retained, or evicted within its grace), i.e. while nothing
   * may have deleted what it references (sweep.ts). Otherwise CONFLICT, nothing written.
   */
  requireListed?: string;
}

/** Snapshots waiting out their grace, at most this many: the pointer is read by every restore. */
const MAX_PENDING_EVICTIONS = 64;

/**
 * Moves latest.json to `entry` unless it already holds an LSN >= ours. Returns the entries
 * whose folders may now be deleted: those that fell out of the retention window (never
 * pinned ones) at least `evictionGraceMs` ago. The caller deletes them only after this
 * returns, so a reader following the pointer never meets a deleted snapshot it was just
 * pointed at, and one that read an older pointer has the grace period to finish.
 */
export async function publishPointer(store: ObjectStore, partition: string, entry: RetainedEntry, options: PublishOptions): Promise<PublishResult> {
  const grace = options.evictionGraceMs ?? 0;
  return updatePointer<PublishResult>(
    store,
    partition,
    async (current) => {
      if (current?.etag !== undefined && current.pointer.snapshotId === entry.snapshotId) {
        // A retried PUT that had in fact succeeded: the pointer already is ours.
        return { keep: true, result: { status: 'published', pointer: current.pointer, evicted: [] } };
      }
      // A published pointer at our LSN already covers us; a recovered one only bars what is older.
      const covered = current && (current.etag !== undefined ? current.pointer.lsn >= entry.lsn : current.pointer.lsn > entry.lsn);
      if (current && covered && current.pointer.snapshotId !== entry.snapshotId) {
        // Our PUT landed although we heard an error, and another worker has published on top
        // of it since: its pointer retains our snapshot, which is therefore published (and must
        // not be deleted as superseded). Only our own write can have put our id there (in a
        // pointer read from the store; a recovered one lists every complete folder).
        if (current.etag !== undefined && current.pointer.retained.some((e) => e.snapshotId === entry.snapshotId)) return { keep: true, result: { status: 'published', pointer: current.pointer, evicted: [] } };
        return { keep: true, result: { status: 'superseded', current: current.pointer } };
      }
      if (options.requireListed !== undefined && !(current?.etag !== undefined && [...current.pointer.retained, ...(current.pointer.evicted ?? [])].some((e) => e.path === options.requireListed))) {
        throw new CairnError('CONFLICT', `snapshot ${options.requireListed}, whose tables this checkpoint references, is no longer listed in ${layout.latest(partition)}; not published (the next checkpoint references what is listed then)`, {
          details: { partition, requireListed: options.requireListed },
        });
      }
      const pins = await readPins(store, partition);
      const now = options.now?.() ?? Date.now();
      // Only a pointer read from the store lists snapshots that are safe to keep (see recoverFromFolders).
      const stored = current?.etag !== undefined ? current.pointer : undefined;
      const previous = stored?.retained ?? [];
      const merged = [entry, ...previous.filter((e) => e.snapshotId !== entry.snapshotId)];
      const keep = merged.filter((e, i) => i < options.retain || pins.has(e.path));
      const evictedAt = new Date(now).toISOString();
      const leaving: EvictedEntry[] = [
        ...merged.filter((e) => !keep.includes(e)).map((e) => ({ ...e, evictedAt })),
        ...(stored?.evicted ?? []).filter((e) => !keep.some((k) => k.path === e.path)),
      ];
      // Newest evictions first; past the cap, or past their grace, they are due for deletion.
      leaving.sort((a, b) => Date.parse(b.evictedAt) - Date.parse(a.evictedAt));
      const pending = leaving.filter((e, i) => i < MAX_PENDING_EVICTIONS && now - Date.parse(e.evictedAt) < grace);
      const due = leaving.filter((e) => !pending.includes(e)).map(({ evictedAt: _, ...e }) => e);
      const next: LatestPointer = { format: 1, partition, ...entry, retained: keep, ...(pending.length > 0 ? { evicted: pending } : {}) };
      return { write: next, result: { status: 'published', pointer: next, evicted: due } };
    },
    { known: options.known, ...(options.logger ? { logger: options.logger } : {}) },
  );
}
