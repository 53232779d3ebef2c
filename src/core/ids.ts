import { monotonicFactory } from 'ulid';
import { validatePartition, validateSnapshotId, parseLsn } from './names.js';
import { CairnError } from './errors.js';

const nextUlid = monotonicFactory();

/** A new snapshot id: a ULID, so ids sort by creation time and never collide across nodes. */
export function newSnapshotId(now: number = Date.now()): string {
  return nextUlid(now);
}

/** The folder name of a snapshot: `{snapshotId}_{lsn}`. */
export function snapshotFolderName(snapshotId: string, lsn: number): string {
  return `${validateSnapshotId(snapshotId)}_${parseLsn(lsn)}`;
}

export function parseSnapshotFolderName(name: string): { snapshotId: string; lsn: number } | undefined {
  const m = /^([0-9A-HJKMNP-TV-Z]{26})_(0|[1-9][0-9]*)$/.exec(name);
  if (!m) return undefined;
  const lsn = Number(m[2]);
  if (!Number.isSafeInteger(lsn)) return undefined;
  return { snapshotId: m[1]!, lsn };
}

/** `P`, `P@ID` or `P@lsn:N` as given on the command line. */
export interface PartitionRef {
  partition: string;
  snapshotId?: string;
  atLsn?: number;
}

export function parsePartitionRef(text: string): PartitionRef {
  const at = text.indexOf('@');
  if (at < 0) return { partition: validatePartition(text) };
  const partition = validatePartition(text.slice(0, at));
  const rest = text.slice(at + 1);
  if (rest.startsWith('lsn:')) return { partition, atLsn: parseLsn(rest.slice(4)) };
  return { partition, snapshotId: validateSnapshotId(rest) };
}

export function assertNever(x: never): never {
  throw new CairnError('INTERNAL', `unexpected value ${JSON.stringify(x)}`);
}
