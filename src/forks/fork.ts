import { CairnError, badInput, isCairnError } from '../core/errors.js';
import { failpoint } from '../core/failpoints.js';
import { newSnapshotId } from '../core/ids.js';
import { validateForkName, validatePartition, validateSnapshotId } from '../core/names.js';
import type { Log } from '../log/types.js';
import { coversLogStart, resumeLsn } from '../snapshots/coverage.js';
import { layout } from '../snapshots/layout.js';
import { readLatest, readMetadata } from '../snapshots/pointer.js';
import { putPointer, updatePointer } from '../snapshots/pointer-update.js';
import { originKey, readOrigin } from '../snapshots/origin.js';
import { createOriginFork, emptyStateParent } from './fork-origin.js';
import type { LatestPointer, Pin, RetainedEntry, SnapshotMetadata } from '../snapshots/schemas.js';
import type { ObjectStore } from '../store/types.js';

/**
 * Zero-copy forks (README, Architecture, "Forks"). A fork's first snapshot is a
 * metadata.json whose files are the parent snapshot's own keys; a pin on the parent keeps
 * that snapshot from being evicted or pruned. Creation is a constant number of small
 * requests whatever the state size.
 *
 * Crash safety comes from the order of writes. A fork exists once `{fork}/latest.json` does.
 * Create writes the pin first and latest.json last; drop deletes latest.json first and the
 * pin last. So a fork never exists without its pin; the only residue a crash can leave is a
 * pin (or an unpublished folder) without a fork, which re-running the same command completes
 * or removes, and which only ever keeps parent data longer.
 */
export type ForkPoint = { kind: 'latest' } | { kind: 'snapshot'; snapshotId: string } | { kind: 'lsn'; lsn: number };

export interface CreateForkOptions {
  from: string;
  at: ForkPoint;
  name: string;
  node: string;
  /** Point-in-time forks check that the log still holds the records to catch up with. */
  log?: Log;
}

export interface CreateForkResult {
  fork: string;
  /** snapshotId null, lsn -1: a fork of the empty state (no snapshot at or below its point in time). */
  parent: { partition: string; snapshotId: string | null; lsn: number };
  /** The fork's first snapshot; null for a fork of the empty state, whose first open makes one. */
  snapshotId: string | null;
  /** The state's LSN (the parent snapshot's; -1 for the empty state). */
  lsn: number;
  /** Point in time: the LSN the fork catches up to on first open. */
  targetLsn?: number;
  requests: number;
  bytesWritten: number;
  sharedBytes: number;
}

/** Parses `P`, `P@SNAPSHOTID` or `P@lsn:N`. */
export function parseForkSource(text: string): { partition: string; at: ForkPoint } {
  const at = text.indexOf('@');
  if (at < 0) return { partition: validatePartition(text), at: { kind: 'latest' } };
  const partition = validatePartition(text.slice(0, at));
  const rest = text.slice(at + 1);
  const lsn = /^lsn:(0|[1-9][0-9]{0,15})$/.exec(rest);
  if (lsn) {
    const n = Number(lsn[1]);
    if (!Number.isSafeInteger(n)) throw badInput(`invalid LSN in ${JSON.stringify(text)}`);
    return { partition, at: { kind: 'lsn', lsn: n } };
  }
  if (rest.startsWith('lsn:')) throw badInput(`invalid point in time ${JSON.stringify(rest)}: expected lsn:N with N a non-negative integer`);
  return { partition, at: { kind: 'snapshot', snapshotId: validateSnapshotId(rest) } };
}

function chooseEntry(pointer: LatestPointer, at: ForkPoint): RetainedEntry {
  if (at.kind === 'latest') return pointer.retained.find((e) => e.snapshotId === pointer.snapshotId) ?? pointer.retained[0]!;
  if (at.kind === 'snapshot') {
    const entry = pointer.retained.find((e) => e.snapshotId === at.snapshotId);
    if (!entry) throw new CairnError('NOT_FOUND', `snapshot ${at.snapshotId} of ${pointer.partition} is not retained (it may be deleted at any time); fork a retained one: cairn snapshots list --partition ${pointer.partition}`);
    return entry;
  }
  const candidates = pointer.retained.filter((e) => e.lsn <= at.lsn).sort((a, b) => b.lsn - a.lsn);
  if (!candidates[0]) throw new CairnError('NO_SNAPSHOT', `no retained snapshot of ${pointer.partition} at or below LSN ${at.lsn} (oldest is at ${Math.min(...pointer.retained.map((e) => e.lsn))})`);
  return candidates[0];
}

export async function createFork(store: ObjectStore, o: CreateForkOptions): Promise<CreateForkResult> {
  const from = validatePartition(o.from);
  const name = validateForkName(o.name);
  if (from === name) throw badInput(`a fork needs a name of its own: ${name} is its parent`);
  let requests = 0;
  let bytesWritten = 0;
  const put = async (key: string, body: string, options: Parameters<ObjectStore['put']>[2] = {}) => {
    requests++;
    bytesWritten += Buffer.byteLength(body);
    return store.put(key, body, { contentType: 'application/json', ...options });
  };

  requests++;
  const latest = await readLatest(store, from);
  const at = o.at;
  if (at.kind === 'lsn' && o.log && !latest?.pointer.retained.some((e) => e.lsn <= at.lsn)) {
    // No snapshot at or below the point: fork the empty state, if the log still holds it all.
    requests++;
    if (await readLatest(store, name)) throw badInput(`partition ${name} already exists: pick another fork name`);
    const logPartition = latest ? ((await readMetadata(store, latest.pointer.path)).fork?.log ?? from) : from;
    requests++;
    const origin = await createOriginFork(store, { from, name, logPartition, targetLsn: at.lsn, log: o.log });
    bytesWritten += Buffer.byteLength(JSON.stringify(origin, null, 2));
    return { fork: name, parent: emptyStateParent(from), snapshotId: null, lsn: -1, targetLsn: at.lsn, requests, bytesWritten, sharedBytes: 0 };
  }
  if (!latest) throw new CairnError('NO_SNAPSHOT', `partition ${from} has no snapshot to fork`);
  const entry = chooseEntry(latest.pointer, o.at);
  requests++;
  const source = await readMetadata(store, entry.path);
  const logPartition = source.fork?.log ?? from;
  const targetLsn = o.at.kind === 'lsn' && o.at.lsn > source.lsn ? o.at.lsn : undefined;
  if (targetLsn !== undefined && o.log) await checkLogHolds(o.log, logPartition, source.lsn, targetLsn);

  // 1. The pin, before anything references the parent's files.
  const pin: Pin = { format: 1, fork: name, snapshots: [entry.path], createdAt: new Date().toISOString() };
  try {
    await put(layout.pin(from, name), JSON.stringify(pin, null, 2), { ifNoneMatch: '*' });
  } catch (err) {
    if (!isCairnError(err, 'CONDITION_FAILED')) throw err;
    if (await readLatest(store, name)) throw badInput(`fork ${name} already exists`);
    // A pin left by an interrupted create of this same fork: it is ours to replace.
    await put(layout.pin(from, name), JSON.stringify(pin, null, 2));
  }
  failpoint('fork-create:pinned');

  // 2. Change latest.json's ETag: a checkpoint that read the pins before our pin existed then
  //    fails its conditional PUT and re-reads them, so it cannot evict what we just pinned.
  await updatePointer(store, from, async (current) => {
    requests++;
    if (!current?.pointer.retained.some((e) => e.path === entry.path)) {
      await store.delete([layout.pin(from, name)]);
      throw new CairnError('CONDITION_FAILED', `snapshot ${entry.snapshotId} of ${from} was evicted while forking; fork again`, { retryable: true });
    }
    const touched = { ...current.pointer, pinnedAt: pin.createdAt };
    bytesWritten += Buffer.byteLength(JSON.stringify(touched, null, 2));
    return { write: touched, result: undefined };
  }, { known: latest });
  failpoint('fork-create:parent-touched');

  // 3. The fork's first snapshot: the parent's files, by their keys.
  const snapshotId = newSnapshotId();
  const path = layout.snapshotPath(name, snapshotId, source.lsn);
  const createdAt = new Date().toISOString();
  const sharedBytes = source.files.reduce((n, f) => n + f.size, 0);
  const metadata: SnapshotMetadata = {
    format: 1,
    partition: name,
    snapshotId,
    lsn: source.lsn,
    createdAt,
    node: o.node,
    source: source.source,
    parent: { partition: from, snapshotId: source.snapshotId, lsn: source.lsn },
    fork: { log: logPartition, createdAt, ...(targetLsn !== undefined ? { targetLsn } : {}) },
    storageClass: source.storageClass,
    inherits: { path: entry.path },
    files: [],
    // No sizes here either, so the document is byte for byte the same length at any state
    // size; `fork list` reports the shared bytes from the resolved file list.
    stats: { uploadedBytes: 0, copiedBytes: 0, referencedBytes: 0, syncPauseMs: 0, durationMs: 0 },
  };
  await put(layout.metadata(path), JSON.stringify(metadata, null, 2), { ifNoneMatch: '*' });
  failpoint('fork-create:metadata');

  // 4. latest.json last: from here on the fork exists.
  const pointer: LatestPointer = { format: 1, partition: name, snapshotId, lsn: source.lsn, path, createdAt, retained: [{ snapshotId, lsn: source.lsn, path, createdAt }] };
  try {
    requests++;
    bytesWritten += Buffer.byteLength(JSON.stringify(pointer, null, 2));
    await putPointer(store, name, pointer, undefined);
  } catch (err) {
    if (!isCairnError(err, 'CONDITION_FAILED')) throw err;
    await store.delete([layout.metadata(path)]).catch(() => undefined);
    throw badInput(`partition ${name} already exists: pick another fork name`);
  }
  failpoint('fork-create:published');
  return {
    fork: name,
    parent: { partition: from, snapshotId: source.snapshotId, lsn: source.lsn },
    snapshotId,
    lsn: source.lsn,
    ...(targetLsn !== undefined ? { targetLsn } : {}),
    requests,
    bytesWritten,
    sharedBytes,
  };
}

/**
 * A point in time is reachable from state at `fromLsn` only while the log still holds every
 * record after it up to the target: checked when the fork is made and again when it catches up.
 */
export async function checkLogHolds(log: Log, partition: string, fromLsn: number, targetLsn: number): Promise<void> {
  const info = await log.info(partition);
  if (!coversLogStart(fromLsn, info.start)) {
    const needed = resumeLsn(fromLsn);
    throw new CairnError('TRIM_GAP', `cannot reach LSN ${targetLsn} of ${partition} from state at ${fromLsn}: the log starts at ${info.start}, so records ${needed}..${info.start - 1} are gone`, {
      details: { needed, start: info.start, targetLsn },
    });
  }
  if (targetLsn >= info.end) throw badInput(`cannot reach LSN ${targetLsn} of ${partition}: the log ends at ${info.end - 1}`);
}

/** What replay needs to know of a fork, from its latest snapshot. */
export interface ForkDescriptor {
  fork: string;
  /** snapshotId null, lsn -1: forked from the empty state. */
  parent: { partition: string; snapshotId: string | null; lsn: number };
  /** The log partition whose records the fork replays. */
  log: string;
  targetLsn?: number;
  /** Null until a fork of the empty state has caught up once. */
  latest: { snapshotId: string; lsn: number } | null;
}

export async function describeFork(store: ObjectStore, name: string): Promise<ForkDescriptor> {
  validateForkName(name);
  const latest = await readLatest(store, name);
  if (!latest) {
    const origin = await readOrigin(store, name);
    if (!origin) throw new CairnError('NOT_FOUND', `fork ${name} does not exist`);
    return { fork: name, parent: emptyStateParent(origin.parent.partition), log: origin.log, targetLsn: origin.targetLsn, latest: null };
  }
  const meta = await readMetadata(store, latest.pointer.path);
  if (!meta.fork) throw badInput(`${name} is a partition, not a fork`);
  const parent = meta.parent ?? (await originParent(store, name));
  return {
    fork: name,
    parent,
    log: meta.fork.log,
    ...(meta.fork.targetLsn !== undefined ? { targetLsn: meta.fork.targetLsn } : {}),
    latest: { snapshotId: meta.snapshotId, lsn: meta.lsn },
  };
}

/** The parent of a fork that was made from the empty state (its snapshots name no parent snapshot). */
export async function originParent(store: ObjectStore, name: string): Promise<{ partition: string; snapshotId: null; lsn: number }> {
  const origin = await readOrigin(store, name);
  if (!origin) throw new CairnError('CORRUPT', `fork ${name} names no parent snapshot and has no ${originKey(name)}`, { details: { key: originKey(name) } });
  return emptyStateParent(origin.parent.partition);
}
