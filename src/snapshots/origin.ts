import { z } from 'zod';
import { isCairnError } from '../core/errors.js';
import { PARTITION_NAME, validatePartition } from '../core/names.js';
import type { ObjectStore } from '../store/types.js';
import { parseDocument } from './schemas.js';

/**
 * `{fork}/origin.json`: a fork of the empty state. A point-in-time fork `P@lsn:N` where no
 * retained snapshot of P is at or below N, but the log still holds every record from LSN 0,
 * has no parent snapshot to reference; it is described by its origin alone (what it replays,
 * up to where) until its first open catches it up to N and checkpoints there. Its snapshots
 * carry the lineage from then on (checkpoint reads the origin for the first one).
 */
export const originSchema = z.object({
  format: z.literal(1),
  fork: z.string().regex(PARTITION_NAME),
  /** The partition the fork was made from, and the log partition it replays. */
  parent: z.object({ partition: z.string().regex(PARTITION_NAME) }),
  log: z.string().regex(PARTITION_NAME),
  createdAt: z.iso.datetime(),
  targetLsn: z.number().int().min(0),
});

export type ForkOrigin = z.infer<typeof originSchema>;

export function originKey(fork: string): string {
  return `${validatePartition(fork)}/origin.json`;
}

/** The origin of a fork made from the empty state; undefined for anything else. */
export async function readOrigin(store: ObjectStore, fork: string): Promise<ForkOrigin | undefined> {
  const key = originKey(fork);
  try {
    return parseDocument(originSchema, (await store.get(key)).body, key);
  } catch (err) {
    if (isCairnError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}

