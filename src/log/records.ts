import { badInput } from '../core/errors.js';
import type { AppendRecord } from './types.js';

/**
 * One record of an append, checked and encoded the same way for every backend, so a log
 * accepts exactly what another would: a string key, a whole non-negative millisecond
 * timestamp (Kafka cannot store fractions), and a JSON-serialisable value (an absent value
 * is stored as null). A bad record fails the whole call before anything is written.
 */
export interface CheckedRecord {
  key: string;
  /** The value as JSON text. */
  valueJson: string;
  timestamp: number;
}

/** Whole, non-negative milliseconds since the epoch: what Kafka can store. */
export function isRecordTimestamp(t: unknown): t is number {
  return typeof t === 'number' && Number.isSafeInteger(t) && t >= 0;
}

export function checkAppendRecord(record: AppendRecord, index: number, now: number): CheckedRecord {
  if (record === null || typeof record !== 'object') throw badInput(`record ${index} is not an object`);
  if (typeof record.key !== 'string') throw badInput(`record ${index}: key must be a string`);
  const timestamp = record.timestamp ?? now;
  if (!isRecordTimestamp(timestamp)) {
    throw badInput(`record ${index}: timestamp must be a non-negative integer (milliseconds since the epoch)`);
  }
  let valueJson: string | undefined;
  try {
    valueJson = JSON.stringify(record.value === undefined ? null : record.value);
  } catch (err) {
    throw badInput(`record ${index} (key ${JSON.stringify(record.key)}): value is not JSON-serialisable: ${(err as Error).message}`);
  }
  // JSON.stringify returns undefined for a function or a symbol.
  if (valueJson === undefined) throw badInput(`record ${index} (key ${JSON.stringify(record.key)}): value is not JSON-serialisable (${typeof record.value})`);
  return { key: record.key, valueJson, timestamp };
}
