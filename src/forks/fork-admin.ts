import { CairnError, badInput } from '../core/errors.js';
import { failpoint } from '../core/failpoints.js';
import { validateForkName } from '../core/names.js';
import { layout } from '../snapshots/layout.js';
import { readPin } from '../snapshots/pins.js';
import { readOrigin } from '../snapshots/origin.js';
import { listPins, readLatest, readMetadata } from '../snapshots/pointer.js';
import { originParent } from './fork.js';
import { emptyStateParent } from './fork-origin.js';
import { listPartitions } from '../snapshots/repository.js';
import type { ObjectStore } from '../store/types.js';

/** Listing and dropping forks; see fork.ts for the write order both rely on. */
export interface ForkListing {
  fork: string;
  /** snapshotId null, lsn -1: forked from the empty state. Null for a dangling pin. */
  parent: { partition: string; snapshotId: string | null; lsn: number } | null;
  /** The parent snapshot the fork's pin holds; null once the fork owns all its files. */
  pinned: string | null;
  createdAt: string | null;
  ageMs: number | null;
  latest: { snapshotId: string; lsn: number } | null;
  /** Bytes of the fork's latest snapshot that live in an ancestor's folders vs its own. */
  sharedBytes: number;
  ownBytes: number;
  targetLsn?: number;
  /** `dangling`: a pin whose fork does not exist (an interrupted create or drop). */
  status: 'ok' | 'dangling';
}

export async function listForks(store: ObjectStore, now = Date.now()): Promise<ForkListing[]> {
  const names = await listPartitions(store);
  const forks: ForkListing[] = [];
  const pinned = new Map<string, { parent: string; snapshot: string; createdAt: string }>();
  for (const parent of names) for (const pin of await listPins(store, parent)) pinned.set(pin.fork, { parent, snapshot: pin.snapshots[0]!, createdAt: pin.createdAt });
  const existing = new Set<string>();
  for (const name of names) {
    const latest = await readLatest(store, name);
    if (!latest) continue;
    const meta = await readMetadata(store, latest.pointer.path).catch(() => undefined);
    if (!meta?.fork) continue;
    existing.add(name);
    const own = layout.partitionPrefix(name);
    const ownBytes = meta.files.filter((f) => f.key.startsWith(own)).reduce((n, f) => n + f.size, 0);
    const total = meta.files.reduce((n, f) => n + f.size, 0);
    forks.push({
      fork: name,
      parent: meta.parent ?? (await originParent(store, name)),
      pinned: pinned.get(name)?.snapshot ?? null,
      createdAt: meta.fork.createdAt,
      ageMs: now - Date.parse(meta.fork.createdAt),
      latest: { snapshotId: meta.snapshotId, lsn: meta.lsn },
      sharedBytes: total - ownBytes,
      ownBytes,
      ...(meta.fork.targetLsn !== undefined ? { targetLsn: meta.fork.targetLsn } : {}),
      status: 'ok',
    });
  }
  // Forks of the empty state that have not caught up yet: an origin and no snapshot.
  for (const name of names) {
    if (existing.has(name)) continue;
    const origin = await readOrigin(store, name);
    if (!origin) continue;
    existing.add(name);
    forks.push({
      fork: name,
      parent: emptyStateParent(origin.parent.partition),
      pinned: null,
      createdAt: origin.createdAt,
      ageMs: now - Date.parse(origin.createdAt),
      latest: null,
      sharedBytes: 0,
      ownBytes: 0,
      targetLsn: origin.targetLsn,
      status: 'ok',
    });
  }
  for (const [fork, pin] of pinned) {
    if (existing.has(fork)) continue;
    forks.push({ fork, parent: null, pinned: pin.snapshot, createdAt: pin.createdAt, ageMs: now - Date.parse(pin.createdAt), latest: null, sharedBytes: 0, ownBytes: 0, status: 'dangling' });
  }
  return forks.sort((a, b) => a.fork.localeCompare(b.fork));
}

/**
 * Drops a fork: latest.json first (the fork stops existing), then its folders, then its
 * pin. Re-running after a crash finishes the job; it also removes what an interrupted
 * create left (a pin, an unpublished folder) for this name.
 */
export interface DropForkResult {
  fork: string;
  deletedObjects: number;
  releasedPins: string[];
}

export async function dropFork(store: ObjectStore, name: string): Promise<DropForkResult> {
  validateForkName(name);
  const latest = await readLatest(store, name);
  const parents: string[] = [];
  if (latest) {
    const meta = await readMetadata(store, latest.pointer.path);
    if (!meta.fork) throw badInput(`${name} is a partition, not a fork; it cannot be dropped`);
    // A fork of the empty state pins nothing of its parent.
    if (meta.parent) parents.push(meta.parent.partition);
  } else {
    // No fork: only residue can be left. Its pin may sit under any partition.
    for (const p of await listPartitions(store)) if (p !== name && (await readPin(store, p, name))) parents.push(p);
    const leftovers = await hasObjects(store, layout.partitionPrefix(name));
    if (parents.length === 0 && !leftovers) throw new CairnError('NOT_FOUND', `fork ${name} does not exist`);
  }
  const children = await listPins(store, name);
  if (children.length > 0) throw badInput(`fork ${name} has forks of its own (${children.map((c) => c.fork).join(', ')}): drop them first`);

  let deleted = 0;
  if (latest) {
    await store.delete([layout.latest(name)]);
    deleted++;
  }
  failpoint('fork-drop:unpublished');
  const keys: string[] = [];
  for await (const obj of store.list(layout.partitionPrefix(name))) keys.push(obj.key);
  // metadata.json first within each folder, as deleteSnapshotFolder does: never a folder
  // that looks complete with files missing.
  const ordered = [...keys.filter((k) => k.endsWith('/metadata.json')), ...keys.filter((k) => !k.endsWith('/metadata.json'))];
  for (let i = 0; i < ordered.length; i += 1000) await store.delete(ordered.slice(i, i + 1000));
  deleted += ordered.length;
  failpoint('fork-drop:folders');
  for (const parent of parents) await store.delete([layout.pin(parent, name)]);
  failpoint('fork-drop:done');
  return { fork: name, deletedObjects: deleted, releasedPins: parents.map((p) => layout.pin(p, name)) };
}

async function hasObjects(store: ObjectStore, prefix: string): Promise<boolean> {
  for await (const _ of store.list(prefix)) return true;
  return false;
}
