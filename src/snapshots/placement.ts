import { z } from 'zod';
import { CLASS_NAME, defaultClassOf, requireClass, type PlacementConfig, type StorageClassConfig } from '../core/placement-config.js';
import { CairnError, isCairnError, toCairnError, type ErrorCode } from '../core/errors.js';
import { newSnapshotId } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import { PARTITION_NAME, validatePartition } from '../core/names.js';
import type { Capture } from '../state/types.js';
import { hashTables, type CheckpointResult, type StoreOutcome } from './checkpoint.js';

export type { StoreOutcome };
import { layout } from './layout.js';
import type { PointerRead } from './pointer.js';
import type { RestoreResult } from './restore.js';
import type { CheckpointRequest, RestoreRequest, SnapshotRepository } from './repository.js';
import { parseDocument } from './schemas.js';

/**
 * Where a partition's snapshots live (README, "Storage classes and regions"): its storage
 * class names a set of stores, each an independent bucket (a region) with its own
 * latest.json. Checkpoints go to every store of the class; reads start at the home store
 * and fall back to the others. Nothing relies on the buckets replicating each other.
 *
 * A store that fails does not hold the others back: the snapshot is published where it
 * could be, and the store that missed it catches up with the next checkpoint (which
 * uploads to it what it lacks) or `cairn replicate`.
 */
export interface PlacedStore {
  name: string;
  repository: SnapshotRepository;
}

export interface PartitionPlacement {
  partition: string;
  className: string;
  definition: StorageClassConfig;
  /** `class.json` (cairn class set) or the config's rules. */
  source: 'override' | 'rules';
  /** The class's stores, the home store first. */
  stores: PlacedStore[];
}

export type PlacedCheckpointResult = CheckpointResult & { stores: StoreOutcome[] };
export type PlacedPointer = PointerRead & { store: string };
export type PlacedRestoreResult = RestoreResult & { store: string };

/** `<partition>/class.json`: a partition's class as `cairn class set` chose it. */
export const classOverrideSchema = z.object({ format: z.literal(1), partition: z.string().regex(PARTITION_NAME), class: z.string().regex(CLASS_NAME), setAt: z.iso.datetime() });
export type ClassOverride = z.infer<typeof classOverrideSchema>;

/** Failures of one store that another store may not share: try the next. */
const STORE_SIDE: ErrorCode[] = ['NOT_FOUND', 'NO_SNAPSHOT', 'CORRUPT', 'STORE_UNAVAILABLE', 'STORE_FAILED'];
const storeSide = (err: unknown) => STORE_SIDE.some((code) => isCairnError(err, code));

export class Placement {
  constructor(
    readonly config: PlacementConfig,
    private readonly repositoryOf: (store: string) => SnapshotRepository,
    private readonly logger: Logger,
  ) {}

  get homeStore(): string {
    return this.config.homeStore;
  }

  /** Every configured store, home first. */
  allStores(): PlacedStore[] {
    return this.ordered(Object.keys(this.config.stores));
  }

  /**
   * The partition's class as `cairn class set` recorded it: the home store's record, or the
   * next store's when the home store does not answer (so a silent remote region never slows
   * a checkpoint down here). With a single class there is nothing to override, and no
   * request is made.
   */
  async override(partition: string): Promise<ClassOverride | undefined> {
    if (Object.keys(this.config.storageClasses).length === 1) return undefined;
    let first: unknown;
    for (const store of this.allStores()) {
      try {
        const found = await readOverride(store.repository, partition);
        // A class since removed from the config falls back to the rules.
        return found && this.config.storageClasses[found.class] ? found : undefined;
      } catch (err) {
        first ??= err;
      }
    }
    throw first;
  }

  /**
   * Records `className` as the partition's class in every store, so a worker of any home
   * store reads it. Fails (after trying all) when a store did not take it; running it again
   * is safe. Until then a worker whose home store missed it keeps the class it had.
   */
  async setOverride(partition: string, className: string): Promise<ClassOverride> {
    validatePartition(partition);
    requireClass(this.config, className);
    const doc: ClassOverride = { format: 1, partition, class: className, setAt: new Date().toISOString() };
    const body = JSON.stringify(doc, null, 2);
    const writes = await Promise.allSettled(this.allStores().map((s) => s.repository.store.put(layout.classOverride(partition), body, { contentType: 'application/json' })));
    const failed = writes.findIndex((w) => w.status === 'rejected');
    if (failed >= 0) {
      const err = toCairnError((writes[failed] as PromiseRejectedResult).reason);
      throw new CairnError(err.code, `the class of ${partition} was not recorded in store ${this.allStores()[failed]!.name}: ${err.message}; run the command again`, { cause: err });
    }
    return doc;
  }

  async placementOf(partition: string): Promise<PartitionPlacement> {
    validatePartition(partition);
    const override = await this.override(partition);
    const className = override?.class ?? defaultClassOf(this.config, partition);
    const definition = this.config.storageClasses[className]!;
    return { partition, className, definition, source: override ? 'override' : 'rules', stores: this.ordered(definition.stores) };
  }

  /** The pointer with the highest LSN among the class's stores (the home store on a tie). */
  async latest(partition: string): Promise<PlacedPointer | undefined> {
    const { stores } = await this.placementOf(partition);
    const reads = await Promise.allSettled(stores.map((s) => s.repository.latest(partition)));
    let best: PlacedPointer | undefined;
    reads.forEach((r, i) => {
      if (r.status === 'fulfilled' && r.value && (!best || r.value.pointer.lsn > best.pointer.lsn)) best = { ...r.value, store: stores[i]!.name };
    });
    const failed = reads.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // No store answered: "no snapshot" cannot be told from "cannot see it". One that answered
    // "none" is enough to go on: with the log whole, replaying it gives the same state, and
    // a log trimmed past it is a trim gap the caller reports (trims wait for every store).
    if (failed && reads.every((r) => r.status === 'rejected')) throw failed.reason;
    if (failed) this.logger.warn({ partition, err: toCairnError(failed.reason).message }, 'a store of the class did not answer; reading from the others');
    return best;
  }

  /**
   * The newest snapshot any store of the class can serve: each store's latest, highest LSN
   * first (home first on a tie), then each store's own fallback along its retained[]. A
   * named snapshot is looked for in every store in the same order.
   */
  async restore(options: RestoreRequest): Promise<PlacedRestoreResult> {
    const { stores } = await this.placementOf(options.partition);
    const attempts: Array<{ store: PlacedStore; snapshotId?: string }> = [];
    if (options.snapshotId !== undefined || stores.length === 1) {
      attempts.push(...stores.map((store) => ({ store })));
    } else {
      const reads = await Promise.allSettled(stores.map((s) => s.repository.latest(options.partition)));
      const newest = reads
        .map((r, i) => ({ store: stores[i]!, read: r.status === 'fulfilled' ? r.value : undefined, i }))
        .filter((c) => c.read !== undefined)
        .sort((a, b) => b.read!.pointer.lsn - a.read!.pointer.lsn || a.i - b.i);
      attempts.push(...newest.map((c) => ({ store: c.store, snapshotId: c.read!.pointer.snapshotId })), ...stores.map((store) => ({ store })));
    }
    let first: unknown;
    for (const attempt of attempts) {
      try {
        const result = await attempt.store.repository.restore({ ...options, ...(attempt.snapshotId ? { snapshotId: attempt.snapshotId } : {}) });
        if (attempt.store.name !== this.homeStore) this.logger.info({ partition: options.partition, store: attempt.store.name, lsn: result.metadata.lsn }, 'restored from a store other than the home store');
        return { ...result, store: attempt.store.name };
      } catch (err) {
        if (!storeSide(err) || attempts.length === 1) throw err;
        first ??= err;
        this.logger.warn({ partition: options.partition, store: attempt.store.name, err: toCairnError(err).message }, 'store could not serve the snapshot; trying the next');
      }
    }
    throw first ?? new CairnError('NO_SNAPSHOT', `partition ${options.partition} has no snapshot in any store of its class`);
  }

  /**
   * One snapshot, under one id, written to every store of the class side by side: tables
   * are checked and hashed once, then each store copies server-side what it already holds
   * and uploads the rest from the capture. The result is the first store's (home first) that
   * published or was superseded; it fails only when every store failed.
   */
  async checkpoint(capture: Capture, options: CheckpointRequest): Promise<PlacedCheckpointResult> {
    const { className, definition, stores } = await this.placementOf(options.partition);
    const placed = { storageClass: className, ...(definition.s3StorageClass ? { s3StorageClass: definition.s3StorageClass } : {}) };
    if (stores.length === 1) {
      const result = await stores[0]!.repository.checkpoint(capture, { ...options, ...placed });
      return { ...result, stores: [{ store: stores[0]!.name, status: result.status }] };
    }
    await hashTables(capture, stores[0]!.repository.options.concurrency);
    const snapshotId = options.snapshotId ?? newSnapshotId();
    const progress = combinedProgress(stores.length, options.onProgress);
    const settled = await Promise.allSettled(
      stores.map((s, i) => s.repository.checkpoint(capture, { ...options, ...placed, snapshotId, ...(progress ? { onProgress: progress(i) } : {}) })),
    );
    const outcomes: StoreOutcome[] = settled.map((r, i) =>
      r.status === 'fulfilled' ? { store: stores[i]!.name, status: r.value.status } : { store: stores[i]!.name, status: 'failed', error: { code: toCairnError(r.reason).code, message: toCairnError(r.reason).message } },
    );
    // A lost ownership anywhere means this worker must stop publishing everywhere.
    const fenced = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected' && isCairnError(r.reason, 'FENCED'));
    if (fenced) throw fenced.reason;
    const done = settled.find((r): r is PromiseFulfilledResult<CheckpointResult> => r.status === 'fulfilled');
    if (!done) throw (settled[0] as PromiseRejectedResult).reason;
    for (const o of outcomes) {
      if (o.status === 'failed') this.logger.warn({ partition: options.partition, store: o.store, err: o.error.message }, 'snapshot not written to this store; the next checkpoint or cairn replicate catches it up');
    }
    return { ...done.value, stores: outcomes };
  }

  private ordered(names: string[]): PlacedStore[] {
    const sorted = names.includes(this.homeStore) ? [this.homeStore, ...names.filter((n) => n !== this.homeStore)] : names;
    return sorted.map((name) => ({ name, repository: this.repositoryOf(name) }));
  }
}

async function readOverride(repository: SnapshotRepository, partition: string): Promise<ClassOverride | undefined> {
  const key = layout.classOverride(partition);
  try {
    const { body } = await repository.store.get(key);
    return parseDocument(classOverrideSchema, body, key);
  } catch (err) {
    if (isCairnError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}

/** Sums the progress of the same files going to several stores into one bar. */
function combinedProgress(n: number, onProgress: ((done: number, total: number) => void) | undefined) {
  if (!onProgress) return undefined;
  const done = new Array<number>(n).fill(0);
  let total = 0;
  const totals = new Array<number>(n).fill(0);
  return (i: number) => (d: number, t: number) => {
    done[i] = d;
    if (totals[i] !== t) {
      total += t - totals[i]!;
      totals[i] = t;
    }
    onProgress(done.reduce((a, b) => a + b, 0), total);
  };
}
