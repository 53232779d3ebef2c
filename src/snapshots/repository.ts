import { CairnError, isCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { PARTITION_NAME, validatePartition, validateSnapshotId } from '../core/names.js';
import type { Capture } from '../state/types.js';
import type { ObjectStore } from '../store/types.js';
import { checkpoint, type CheckpointOptions, type CheckpointResult } from './checkpoint.js';
import { findSnapshotFolder, listSnapshotFolders, readLatest, readMetadata, readPointerStatus, type PointerRead, type PointerStatus } from './pointer.js';
import { requireConditionalWrites } from './pointer-update.js';
import { rebuildPointer, type RebuildResult } from './rebuild.js';
import { restoreSnapshot, type RestoreOptions, type RestoreResult } from './restore.js';
import type { SnapshotMetadata } from './schemas.js';
import { collectGarbage, IN_FLIGHT_GRACE_MS, type GcResult } from './sweep.js';
import { verifySnapshot, type VerifyReport } from './verify.js';

/** latest.json as a listing saw it: readable (`read`), absent, or unparsable (`status`). */
type PointerState = Awaited<ReturnType<typeof readPointerStatus>>;
export type { PointerStatus };

export interface SnapshotListing {
  snapshotId: string;
  lsn: number;
  path: string;
  createdAt: string | null;
  bytes: number | null;
  retained: boolean;
  latest: boolean;
  /** Left retained[] and waits out its eviction grace (still whole, deleted after it). */
  evicted: boolean;
  /** false when metadata.json is missing or unreadable (an interrupted upload). */
  complete: boolean;
  /** The storage class metadata.json records (null when incomplete). */
  storageClass: string | null;
}

export interface RepositoryOptions {
  retain: number;
  concurrency: number;
  /** See PublishOptions.evictionGraceMs; absent: evicted snapshots are deleted at once. */
  evictionGraceMs?: number;
  storageClass?: string;
  /** CheckpointOptions.sharing; default "copy". */
  sharing?: 'copy' | 'shared';
  /** snapshots.retire: evicted objects deleted (default) or tagged for the bucket's lifecycle (sweep.ts). */
  retire?: 'delete' | 'tag';
  logger?: Logger;
}

/** Partitions (and forks) with anything in the store: its top-level folders that are valid names. */
export async function listPartitions(store: ObjectStore): Promise<string[]> {
  return (await store.listFolders('')).filter((name) => PARTITION_NAME.test(name));
}

export interface SnapshotList {
  partition: string;
  pointer: PointerStatus;
  snapshots: SnapshotListing[];
}

/**
 * Every snapshot folder of a partition, newest first, with its place in `latest` (read here
 * unless the caller already holds it), whether its metadata.json makes it complete, and
 * whether the pointer itself is readable. An unparsable latest.json does not stop the
 * listing: the folders speak for themselves (retained/latest are then all false), and
 * `pointer.ok` is false with the reason.
 */
export async function listSnapshotsWithPointer(store: ObjectStore, partition: string, known?: PointerState): Promise<SnapshotList> {
  validatePartition(partition);
  const { status: pointer, read: latest } = known ?? (await readPointerStatus(store, partition));
  const retained = new Set(latest?.pointer.retained.map((e) => e.snapshotId) ?? []);
  const evicted = new Set(latest?.pointer.evicted?.map((e) => e.snapshotId) ?? []);
  const listings = await Promise.all(
    (await listSnapshotFolders(store, partition)).map(async (f): Promise<SnapshotListing> => {
      const base = { ...f, retained: retained.has(f.snapshotId), evicted: evicted.has(f.snapshotId), latest: latest?.pointer.snapshotId === f.snapshotId };
      try {
        const meta = await readMetadata(store, f.path);
        return { ...base, createdAt: meta.createdAt, bytes: meta.files.reduce((n, x) => n + x.size, 0), complete: true, storageClass: meta.storageClass };
      } catch (err) {
        if (!isCairnError(err, 'NOT_FOUND') && !isCairnError(err, 'CORRUPT')) throw err;
        return { ...base, createdAt: null, bytes: null, complete: false, storageClass: null };
      }
    }),
  );
  return { partition, pointer, snapshots: listings.sort((a, b) => (a.snapshotId < b.snapshotId ? 1 : -1)) };
}

/** The folders of `listSnapshotsWithPointer` alone (an unparsable latest.json is tolerated there too). */
export async function listSnapshots(store: ObjectStore, partition: string): Promise<SnapshotListing[]> {
  return (await listSnapshotsWithPointer(store, partition)).snapshots;
}

/** The snapshots of every partition in one object store: the only way code above reaches them. */
export class SnapshotRepository {
  constructor(
    readonly store: ObjectStore,
    readonly options: RepositoryOptions,
  ) {
    requireConditionalWrites(store);
  }

  partitions(): Promise<string[]> {
    return listPartitions(this.store);
  }

  latest(partition: string): Promise<PointerRead | undefined> {
    return readLatest(this.store, validatePartition(partition));
  }

  /** The metadata of `snapshotId`, or of the latest snapshot. */
  async metadata(partition: string, snapshotId?: string): Promise<SnapshotMetadata> {
    validatePartition(partition);
    if (snapshotId === undefined) {
      const latest = await this.latest(partition);
      if (!latest) throw new CairnError('NO_SNAPSHOT', `partition ${partition} has no snapshot`);
      return readMetadata(this.store, latest.pointer.path);
    }
    validateSnapshotId(snapshotId);
    return readMetadata(this.store, (await findSnapshotFolder(this.store, partition, snapshotId)).path);
  }

  /** Every snapshot folder of a partition, newest first. */
  list(partition: string): Promise<SnapshotListing[]> {
    return listSnapshots(this.store, partition);
  }

  /** The same folders, and whether latest.json is readable (`pointer.ok`). */
  listWithPointer(partition: string): Promise<SnapshotList> {
    return listSnapshotsWithPointer(this.store, partition);
  }

  /**
   * Rebuilds latest.json from the newest complete snapshot folders that verify; a dry run
   * unless `apply`. `retain` and `concurrency` default to this repository's.
   */
  rebuildPointer(partition: string, options: { retain?: number; apply?: boolean; concurrency?: number } = {}): Promise<RebuildResult> {
    return rebuildPointer(this.store, validatePartition(partition), {
      retain: options.retain ?? this.options.retain,
      concurrency: options.concurrency ?? this.options.concurrency,
      apply: Boolean(options.apply),
      ...(this.options.logger ? { logger: this.options.logger } : {}),
    });
  }

  checkpoint(capture: Capture, options: CheckpointRequest): Promise<CheckpointResult> {
    return checkpoint(this.store, capture, {
      retain: this.options.retain,
      concurrency: this.options.concurrency,
      ...(this.options.evictionGraceMs !== undefined ? { evictionGraceMs: this.options.evictionGraceMs } : {}),
      ...(this.options.storageClass ? { storageClass: this.options.storageClass } : {}),
      ...(this.options.sharing ? { sharing: this.options.sharing } : {}),
      ...(this.options.retire ? { retire: this.options.retire } : {}),
      ...(this.options.logger ? { logger: this.options.logger } : {}),
      ...options,
    });
  }

  /**
   * Retires (deletes, or tags: options.retire) what no readable snapshot of `partition` references, in folders older than
   * `graceMs` (default: an hour, the longest a checkpoint is expected to take) (sweep.ts).
   */
  collectGarbage(partition: string, options: { dryRun?: boolean; graceMs?: number } = {}): Promise<GcResult> {
    return collectGarbage(this.store, validatePartition(partition), {
      graceMs: options.graceMs ?? IN_FLIGHT_GRACE_MS,
      dryRun: Boolean(options.dryRun),
      ...(this.options.retire ? { retire: this.options.retire } : {}),
      ...(this.options.logger ? { logger: this.options.logger } : {}),
    });
  }

  restore(options: RestoreRequest): Promise<RestoreResult> {
    validatePartition(options.partition);
    if (options.snapshotId !== undefined) validateSnapshotId(options.snapshotId);
    return restoreSnapshot(this.store, {
      concurrency: this.options.concurrency,
      ...(this.options.logger ? { logger: this.options.logger } : {}),
      ...options,
    });
  }

  async verify(partition: string, snapshotId?: string): Promise<VerifyReport> {
    return verifySnapshot(this.store, await this.metadata(partition, snapshotId), this.options.concurrency);
  }
}

/**
 * What a processor needs of its snapshots: one store's SnapshotRepository, or a Placement
 * that spreads them over the stores of the partition's storage class.
 */
/** A checkpoint as callers ask for one: retention and concurrency come from the repository's configuration. */
export type CheckpointRequest = Omit<CheckpointOptions, 'retain' | 'concurrency'>;

/** A restore as callers ask for one: concurrency defaults to the repository's. */
export type RestoreRequest = Omit<RestoreOptions, 'concurrency'> & { concurrency?: number };

export type SnapshotAccess = Pick<SnapshotRepository, 'latest' | 'restore' | 'checkpoint'>;

export type { CheckpointResult, GcResult, RebuildResult, RestoreResult, VerifyReport, SnapshotMetadata };
