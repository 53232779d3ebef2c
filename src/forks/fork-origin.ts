import { CairnError, badInput, isCairnError } from '../core/errors.js';
import type { Log } from '../log/types.js';
import { coversLogStart, EMPTY_STATE_LSN } from '../snapshots/coverage.js';
import { originKey, type ForkOrigin } from '../snapshots/origin.js';
import type { ObjectStore } from '../store/types.js';

/**
 * Forks of the empty state (see snapshots/origin.ts): like a Neon branch at any LSN inside the
 * log's retention window, made in O(1) with no parent snapshot at all.
 *
 * createOriginFork writes the origin, only if absent (a second create of the same name fails). The log must
 * hold LSN 0 through `targetLsn`, checked here and again when the fork catches up.
 */
export async function createOriginFork(
  store: ObjectStore,
  o: { from: string; name: string; logPartition: string; targetLsn: number; log: Log },
): Promise<ForkOrigin> {
  const info = await o.log.info(o.logPartition);
  if (!coversLogStart(EMPTY_STATE_LSN, info.start)) {
    throw new CairnError('NO_SNAPSHOT', `no retained snapshot of ${o.from} at or below LSN ${o.targetLsn}, and the log starts at ${info.start}, so the records from LSN 0 are gone`, {
      details: { partition: o.from, targetLsn: o.targetLsn, logStart: info.start },
    });
  }
  if (o.targetLsn >= info.end) throw badInput(`cannot reach LSN ${o.targetLsn} of ${o.logPartition}: the log ends at ${info.end - 1}`);
  const origin: ForkOrigin = { format: 1, fork: o.name, parent: { partition: o.from }, log: o.logPartition, createdAt: new Date().toISOString(), targetLsn: o.targetLsn };
  try {
    await store.put(originKey(o.name), JSON.stringify(origin, null, 2), { ifNoneMatch: '*', contentType: 'application/json' });
  } catch (err) {
    if (isCairnError(err, 'CONDITION_FAILED')) throw badInput(`fork ${o.name} already exists`);
    throw err;
  }
  return origin;
}

/** The parent of a fork of the empty state, as fork results and listings name it: no snapshot, LSN -1. */
export function emptyStateParent(partition: string): { partition: string; snapshotId: null; lsn: number } {
  return { partition, snapshotId: null, lsn: EMPTY_STATE_LSN };
}
