import { CairnError, isCairnError } from '../core/errors.js';
import { parseSnapshotFolderName } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import { PARTITION_NAME, validatePartition, validateSnapshotId } from '../core/names.js';
import type { Capture } from '../state/types.js';
import type { ObjectStore } from '../store/types.js';
import { checkpoint, type CheckpointOptions, type CheckpointResult } from './checkpoint.js';
import { layout } from './layout.js';
import { readLatest, readMetadata, type PointerRead } from './pointer.js';
import { rebuildPointer, type RebuildResult } from './rebuild.js';
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

/** Whether `{partition}/latest.json` could be read, as a listing reports it. */
export interface PointerStatus {
  /** The pointer exists and parses. */
  ok: boolean;
  exists: boolean;
  /** Why it is unreadable (only when it exists and does not parse). */
  error?: string;
  snapshotId?: string;
  lsn?: number;
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
export async function listSnapshotsWithPointer(store: ObjectStore, partition: string, known?: PointerRead | undefined): Promise<SnapshotList> {
  validatePartition(partition);
  let latest = known;
  let pointer: PointerStatus;
  if (latest) pointer = { ok: true, exists: true, snapshotId: latest.pointer.snapshotId, lsn: latest.pointer.lsn };
  else {
    try {
      latest = await readLatest(store, partition);
      pointer = latest ? { ok: true, exists: true, snapshotId: latest.pointer.snapshotId, lsn: latest.pointer.lsn } : { ok: false, exists: false };
    } catch (err) {
      if (!isCairnError(err, 'CORRUPT')) throw err;
      pointer = { ok: false, exists: true, error: err.message };
    }
  }
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
  return { partition, pointer, snapshots: listings.sort((a, b) => (a.snapshotId < b.snapshotId ? 1 : -1)) };
}

/** The folders of `listSnapshotsWithPointer` alone (an unparsable latest.json is tolerated there too). */
export async function listSnapshots(store: ObjectStore, partition: string, known?: PointerRead | undefined): Promise<SnapshotListing[]> {
  return (await listSnapshotsWithPointer(store, partition, known)).snapshots;
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

export type { CheckpointResult, RebuildResult, RestoreResult, VerifyReport, SnapshotMetadata };
