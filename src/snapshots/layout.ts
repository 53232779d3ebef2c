import { snapshotFolderName, parseSnapshotFolderName } from '../core/ids.js';
import { validatePartition, validateForkName } from '../core/names.js';

/**
 * Object keys, relative to the store root. Every key is built here from validated names,
 * so nothing user-supplied reaches a key unchecked.
 */
export const layout = {
  partitionPrefix: (partition: string) => `${validatePartition(partition)}/`,
  latest: (partition: string) => `${validatePartition(partition)}/latest.json`,
  /** Which member of a worker group owns the partition (ownership.ts). */
  owner: (partition: string) => `${validatePartition(partition)}/owner.json`,
  /** The partition's storage class when `cairn class set` chose one (placement.ts); in every store. */
  classOverride: (partition: string) => `${validatePartition(partition)}/class.json`,
  snapshotPath: (partition: string, snapshotId: string, lsn: number) =>
    `${validatePartition(partition)}/${snapshotFolderName(snapshotId, lsn)}`,
  metadata: (snapshotPath: string) => `${snapshotPath}/metadata.json`,
  file: (snapshotPath: string, name: string) => `${snapshotPath}/${name}`,
  pinsPrefix: (partition: string) => `${validatePartition(partition)}/pins/`,
  pin: (partition: string, fork: string) => `${validatePartition(partition)}/pins/${validateForkName(fork)}.json`,
};

/** Parses `{partition}/{snapshotId}_{lsn}`; undefined for anything else. */
export function parseSnapshotPath(path: string): { partition: string; snapshotId: string; lsn: number } | undefined {
  const slash = path.indexOf('/');
  if (slash < 0) return undefined;
  const folder = parseSnapshotFolderName(path.slice(slash + 1));
  return folder ? { partition: path.slice(0, slash), ...folder } : undefined;
}

/** LevelDB files that are immutable once written, and so may be shared between snapshots. */
export function isTableFile(name: string): boolean {
  return /^\d{6,}\.(ldb|sst)$/.test(name);
}

/** Names a snapshot may contain: tables, one MANIFEST, CURRENT. Anything else is rejected. */
export function isSnapshotFileName(name: string): boolean {
  return isTableFile(name) || /^MANIFEST-\d{6,}$/.test(name) || name === 'CURRENT';
}
