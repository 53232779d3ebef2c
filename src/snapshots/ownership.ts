import { z } from 'zod';
import { CairnError, isCairnError } from '../core/errors.js';
import type { ObjectStore } from '../store/types.js';
import { layout } from './layout.js';
import { requireConditionalWrites } from './pointer-update.js';

/**
 * Fencing for worker groups. `{partition}/owner.json` holds an epoch that only grows: a
 * worker that is given a partition claims it by writing epoch + 1 (a conditional PUT, so of
 * two claims at once exactly one wins a given epoch), and before it publishes a snapshot it
 * checks that the epoch is still its own. A worker that lost the partition while paused (GC,
 * SIGSTOP, a network split) and carries on finds a higher epoch there and stops: FENCED,
 * nothing published. The group protocol decides who should own a partition; this record is
 * what keeps a worker that has not heard yet from acting on it.
 */
const ownerSchema = z.object({ epoch: z.number().int().min(1), node: z.string(), group: z.string(), claimedAt: z.string(), releasedAt: z.string().optional() });
export type OwnerRecord = z.infer<typeof ownerSchema>;

export interface Ownership {
  readonly partition: string;
  readonly epoch: number;
  /** Throws FENCED unless owner.json still names this claim's epoch. */
  check(): Promise<void>;
  /**
   * Marks the claim released (the owner is done: its last snapshot is published), which
   * tells the next owner it need not wait. A no-op when someone claimed above it already.
   */
  release(): Promise<void>;
}

/** Attempts when two workers claim at once: the loser reads the winner's epoch and claims above it. */
const CLAIM_ATTEMPTS = 10;

export async function claimOwnership(store: ObjectStore, partition: string, claimant: { node: string; group: string }): Promise<Ownership> {
  requireConditionalWrites(store);
  for (let attempt = 1; ; attempt++) {
    const current = await readOwner(store, partition);
    const epoch = (current?.record.epoch ?? 0) + 1;
    const record: OwnerRecord = { epoch, node: claimant.node, group: claimant.group, claimedAt: new Date().toISOString() };
    try {
      await store.put(layout.owner(partition), JSON.stringify(record, null, 2), {
        ...(current ? { ifMatch: current.etag } : { ifNoneMatch: '*' as const }),
        contentType: 'application/json',
      });
      return { partition, epoch, check: () => checkOwnership(store, partition, epoch), release: () => releaseOwnership(store, partition, epoch) };
    } catch (err) {
      if (!isCairnError(err, 'CONDITION_FAILED') || attempt >= CLAIM_ATTEMPTS) throw err;
    }
  }
}

async function checkOwnership(store: ObjectStore, partition: string, epoch: number): Promise<void> {
  const current = await readOwner(store, partition);
  if (current?.record.epoch !== epoch) {
    const by = current ? `${current.record.node} (epoch ${current.record.epoch}, claimed ${current.record.claimedAt})` : 'nobody';
    throw new CairnError('FENCED', `${partition} is no longer this worker's (epoch ${epoch}): owned by ${by}`, {
      details: { partition, epoch, ...(current ? { owner: current.record } : {}) },
    });
  }
}

async function releaseOwnership(store: ObjectStore, partition: string, epoch: number): Promise<void> {
  const current = await readOwner(store, partition);
  if (current?.record.epoch !== epoch || current.record.releasedAt) return;
  const released: OwnerRecord = { ...current.record, releasedAt: new Date().toISOString() };
  await store.put(layout.owner(partition), JSON.stringify(released, null, 2), { ifMatch: current.etag, contentType: 'application/json' }).catch((err: unknown) => {
    // Claimed by the next owner meanwhile: nothing left to release.
    if (!isCairnError(err, 'CONDITION_FAILED')) throw err;
  });
}

/**
 * Waits, up to `timeoutMs`, until the partition's previous owner has handed it over: its
 * claim released, or the owner no longer a live member of the group (`isLive`), so a dead
 * worker costs nothing here. Returns what it saw, for the log line.
 */
export async function awaitHandoff(
  store: ObjectStore,
  partition: string,
  me: string,
  isLive: (node: string) => Promise<boolean>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<'free' | 'released' | 'owner gone' | 'timed out'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await readOwner(store, partition);
    if (!current || current.record.node === me) return 'free';
    if (current.record.releasedAt) return 'released';
    if (!(await isLive(current.record.node))) return 'owner gone';
    if (Date.now() >= deadline || signal?.aborted) return 'timed out';
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export async function readOwner(store: ObjectStore, partition: string): Promise<{ record: OwnerRecord; etag: string } | undefined> {
  let got: { body: Buffer; etag: string };
  try {
    got = await store.get(layout.owner(partition));
  } catch (err) {
    if (isCairnError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(got.body.toString('utf8'));
  } catch {
    json = undefined;
  }
  const parsed = ownerSchema.safeParse(json);
  if (!parsed.success) throw new CairnError('CORRUPT', `${layout.owner(partition)} is not an ownership record`, { details: { key: layout.owner(partition) } });
  return { record: parsed.data, etag: got.etag };
}
