import { isCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { readMetadata } from './pointer.js';
import { parseDocument, pinSchema, type Pin, type RetainedEntry, type SnapshotMetadata } from './schemas.js';

/**
 * Pins: `{parent}/pins/{fork}.json` keeps the parent snapshots a fork's files live in from
 * being evicted or pruned (pointer.ts keeps pinned entries in `retained`). A fork needs its
 * pin while any of its retained snapshots references a key outside its own folder.
 */
export async function readPin(store: ObjectStore, parent: string, fork: string): Promise<Pin | undefined> {
  const key = layout.pin(parent, fork);
  try {
    return parseDocument(pinSchema, (await store.get(key)).body, key);
  } catch (err) {
    if (isCairnError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}

/** Whether a snapshot's files all live in its own partition's folders. */
export function ownsAllFiles(meta: SnapshotMetadata): boolean {
  const own = layout.partitionPrefix(meta.partition);
  return meta.files.every((f) => f.key.startsWith(own));
}

/**
 * After a fork's checkpoint: once no snapshot of the fork that can still be read (retained, or
 * evicted within its grace) references its ancestors' keys (its checkpoints copied the
 * inherited files server-side), the pin on its parent goes.
 * Failures only keep the pin a while longer, so they are logged, never thrown.
 */
export async function releaseUnusedPin(store: ObjectStore, latest: SnapshotMetadata, retained: readonly RetainedEntry[], logger?: Logger): Promise<boolean> {
  const parent = latest.parent;
  if (!parent || !ownsAllFiles(latest)) return false;
  try {
    // Most checkpoints of a fork come after its pin went: one GET settles those.
    if (!(await readPin(store, parent.partition, latest.partition))) return false;
    for (const entry of retained) {
      if (entry.snapshotId === latest.snapshotId) continue;
      const meta = await readMetadata(store, entry.path).catch((err: unknown) => {
        if (isCairnError(err, 'NOT_FOUND')) return undefined;
        throw err;
      });
      if (meta && !ownsAllFiles(meta)) return false;
    }
    await store.delete([layout.pin(parent.partition, latest.partition)]);
    logger?.info({ fork: latest.partition, parent: parent.partition }, 'fork owns all its files now; pin released');
    return true;
  } catch (err) {
    logger?.warn({ fork: latest.partition, err: String(err) }, 'could not check the fork pin; keeping it');
    return false;
  }
}
