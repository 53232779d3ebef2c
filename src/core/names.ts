import { badInput } from './errors.js';

/**
 * Names reach object keys and file paths, so they are checked before anything else sees
 * them. The pattern excludes '/', '..' as a whole name, upper case and empty names.
 */
export const PARTITION_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** A node (worker) name: recorded in snapshot metadata and reported to the coordinator. */
export const NODE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
/** ULID: 26 Crockford base32 characters, sortable by creation time. */
export const SNAPSHOT_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;

export function validatePartition(name: unknown, what = 'partition'): string {
  if (typeof name !== 'string' || !PARTITION_NAME.test(name)) {
    throw badInput(`invalid ${what} name ${JSON.stringify(name)}: expected [a-z0-9][a-z0-9._-]{0,62}`);
  }
  return name;
}

export const validateForkName = (name: unknown): string => validatePartition(name, 'fork');

export function validateSnapshotId(id: unknown): string {
  if (typeof id !== 'string' || !SNAPSHOT_ID.test(id)) {
    throw badInput(`invalid snapshot id ${JSON.stringify(id)}: expected a 26-character ULID`);
  }
  return id;
}

/** Parses a non-negative integer LSN given as text or number; rejects fractions and overflow. */
export function parseLsn(value: unknown, what = 'LSN'): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && DECIMAL.test(value)) {
    const n = Number(value);
    if (Number.isSafeInteger(n)) return n;
  }
  throw badInput(`invalid ${what} ${JSON.stringify(value)}: expected a non-negative integer`);
}

export function parsePositiveInt(value: unknown, what: string): number {
  const n = parseLsn(value, what);
  if (n === 0) throw badInput(`invalid ${what} 0: expected a positive integer`);
  return n;
}
