import { isUtf8 } from 'node:buffer';
import { badInput } from '../core/errors.js';
import type { AppendRecord, RecordHeader } from './types.js';

/**
 * One record of an append, checked and encoded the same way for every backend, so a log
 * accepts exactly what another would: a key that is text, bytes or absent; a value that is
 * bytes (stored as given), absent (a tombstone) or JSON-serialisable (stored as its JSON
 * text); headers with text names; and a whole non-negative millisecond timestamp (Kafka
 * cannot store fractions). A bad record fails the whole call before anything is written.
 */
export interface CheckedRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
  timestamp: number;
}

/** Whole, non-negative milliseconds since the epoch: what Kafka can store. */
export function isRecordTimestamp(t: unknown): t is number {
  return typeof t === 'number' && Number.isSafeInteger(t) && t >= 0;
}

export function checkAppendRecord(record: AppendRecord, index: number, now: number): CheckedRecord {
  if (record === null || typeof record !== 'object') throw badInput(`record ${index} is not an object`);
  const key = checkKey(record.key, index);
  const timestamp = record.timestamp ?? now;
  if (!isRecordTimestamp(timestamp)) {
    throw badInput(`record ${index}: timestamp must be a non-negative integer (milliseconds since the epoch)`);
  }
  return { key, value: encodeValue(record.value, index, key), headers: checkHeaders(record.headers, index), timestamp };
}

function checkKey(key: unknown, index: number): Buffer | null {
  if (key === null || key === undefined) return null;
  if (typeof key === 'string') return Buffer.from(key, 'utf8');
  if (key instanceof Uint8Array) return Buffer.from(key);
  throw badInput(`record ${index}: key must be a string, bytes or null`);
}

function encodeValue(value: unknown, index: number, key: Buffer | null): Buffer | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return Buffer.from(value);
  const named = `record ${index}${key ? ` (key ${JSON.stringify(key.toString('utf8'))})` : ''}`;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw badInput(`${named}: value is not JSON-serialisable: ${(err as Error).message}`);
  }
  // JSON.stringify returns undefined for a function or a symbol.
  if (json === undefined) throw badInput(`${named}: value is not JSON-serialisable (${typeof value})`);
  return Buffer.from(json, 'utf8');
}

function checkHeaders(headers: AppendRecord['headers'], index: number): RecordHeader[] {
  if (headers === undefined || headers === null) return [];
  if (typeof headers !== 'object') throw badInput(`record ${index}: headers must be a list of {key, value} or an object`);
  const entries: Array<{ key: unknown; value: unknown }> = Array.isArray(headers) ? headers : Object.entries(headers).map(([key, value]) => ({ key, value }));
  return entries.map((h, i) => {
    if (h === null || typeof h !== 'object' || typeof h.key !== 'string') throw badInput(`record ${index}: header ${i} needs a string key`);
    const v = h.value;
    if (typeof v === 'string') return { key: h.key, value: Buffer.from(v, 'utf8') };
    if (v instanceof Uint8Array) return { key: h.key, value: Buffer.from(v) };
    throw badInput(`record ${index}: header ${JSON.stringify(h.key)} must have a string or bytes value (the Kafka client cannot write a null one)`);
  });
}

/**
 * A stored key as text when it is valid UTF-8, else null (types.ts LogRecord.key): a lossy
 * decode would map distinct binary keys onto one string.
 */
export function keyText(bytes: Buffer | null): string | null {
  if (bytes === null) return null;
  return strictUtf8(bytes) ?? null;
}

/**
 * The bytes as text, or undefined when they are not valid UTF-8 (toString alone would turn
 * bad bytes into U+FFFD and hand over a valid but wrong string). Decoding first and checking
 * only text that holds a U+FFFD costs one pass instead of two on the hot path.
 */
export function strictUtf8(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8');
  if (!text.includes('\uFFFD')) return text;
  return isUtf8(bytes) ? text : undefined;
}
