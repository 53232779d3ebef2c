import { CairnError, isCairnError } from '../core/errors.js';
import { parseSnapshotFolderName } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import { PARTITION_NAME, validatePartition, validateSnapshotId } from '../core/names.js';
import type { Capture } from '../state/types.js';
import type { ObjectStore } from '../store/types.js';
import { checkpoint, type CheckpointOptions, type CheckpointResult } from './checkpoint.js';
import { layout } from './layout.js';
import { readLatest, readMetadata, type PointerRead } from './pointer.js';
import { restoreSnapshot, type RestoreOptions, type RestoreResult } from './restore.js';
import type { SnapshotMetadata } from './schemas.js';
import { verifySnapshot, type VerifyReport } from './verify.js';

export interface SnapshotListing {
  snapshotId: string;
  lsn: number;
  path: string;
  createdAt: string | null;
  bytes: number | null;
  retained: boolean;
  latest: boolean;
  /** false when metadata.json is missing or unreadable (an interrupted upload). */
  complete: boolean;
}

export interface RepositoryOptions {
  retain: number;
  concurrency: number;
  storageClass?: string;
  logger?: Logger;
}

/** Partitions (and forks) with anything in the store: its top-level folders that are valid names. */
export async function listPartitions(store: ObjectStore): Promise<string[]> {
  return (await store.listFolders('')).filter((name) => PARTITION_NAME.test(name));
}

/**
 * Every snapshot folder of a partition, newest first, with its place in `latest` (read here
 * unless the caller already holds it) and whether its metadata.json makes it complete.
 */
export async function listSnapshots(store: ObjectStore, partition: string, known?: PointerRead | undefined): Promise<SnapshotListing[]> {
  validatePartition(partition);
  const latest = known ?? (await readLatest(store, partition));
  const retained = new Set(latest?.pointer.retained.map((e) => e.snapshotId) ?? []);
  const folders = (await store.listFolders(layout.partitionPrefix(partition)))
    .map(parseSnapshotFolderName)
    .filter((f): f is NonNullable<typeof f> => f !== undefined);
  const listings = await Promise.all(
    folders.map(async (f): Promise<SnapshotListing> => {
      const path = layout.snapshotPath(partition, f.snapshotId, f.lsn);
      const base = { ...f, path, retained: retained.has(f.snapshotId), latest: latest?.pointer.snapshotId === f.snapshotId };
      try {
        const meta = await readMetadata(store, path);
        return { ...base, createdAt: meta.createdAt, bytes: meta.files.reduce((n, x) => n + x.size, 0), complete: true };
      } catch (err) {
        if (!isCairnError(err, 'NOT_FOUND') && !isCairnError(err, 'CORRUPT')) throw err;
        return { ...base, createdAt: null, bytes: null, complete: false };
      }
    }),
  );
  return listings.sort((a, b) => (a.snapshotId < b.snapshotId ? 1 : -1));
}

/** The snapshots of every partition in one object store: the only way code above reaches them. */
export class SnapshotRepository {
  constructor(
    readonly store: ObjectStore,
    readonly options: RepositoryOptions,
  ) {}

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
    const folders = await this.store.listFolders(layout.partitionPrefix(partition));
    const folder = folders.map(parseSnapshotFolderName).find((f) => f?.snapshotId === snapshotId);
    if (!folder) throw new CairnError('NOT_FOUND', `snapshot ${snapshotId} of ${partition} does not exist`);
    return readMetadata(this.store, layout.snapshotPath(partition, folder.snapshotId, folder.lsn));
  }

  /** Every snapshot folder of a partition, newest first. */
  list(partition: string): Promise<SnapshotListing[]> {
    return listSnapshots(this.store, partition);
  }

  checkpoint(capture: Capture, options: Omit<CheckpointOptions, 'retain' | 'concurrency'>): Promise<CheckpointResult> {
    return checkpoint(this.store, capture, {
      retain: this.options.retain,
      concurrency: this.options.concurrency,
      ...(this.options.storageClass ? { storageClass: this.options.storageClass } : {}),
      ...(this.options.logger ? { logger: this.options.logger } : {}),
      ...options,
    });
  }

  restore(options: Omit<RestoreOptions, 'concurrency'> & { concurrency?: number }): Promise<RestoreResult> {
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

export type { CheckpointResult, RestoreResult, VerifyReport, SnapshotMetadata };
