import { CairnError } from '../core/errors.js';
import { keyText, type CheckedRecord } from './records.js';
import type { LogRecord, RecordHeader } from './types.js';

/**
 * How the embedded log stores one record: a small binary frame, so keys, values and headers
 * come back byte for byte (a tombstone stays distinct from an empty value, a null key from
 * an empty one) and a read slices the stored buffer instead of parsing it.
 *
 *   0       format byte, 0x01
 *   1       flags: bit 0 the key is present, bit 1 the value is present
 *   2..9    timestamp, float64 big-endian (whole milliseconds)
 *   then    [uint32 key length, key bytes] when present
 *           uint32 header count, per header: uint32 name length, name (UTF-8),
 *                                            int32 value length (-1 = null), value
 *   rest    the value bytes, when present
 *
 * Records written before this format are JSON text `{k, v, t}` and start with `{`: they
 * read back as key k and the JSON text of v, which is what they were appended as.
 */
const FORMAT = 0x01;
const LEGACY_JSON = 0x7b; // '{'
const HAS_KEY = 1;
const HAS_VALUE = 2;

export function encodeStoredRecord(r: CheckedRecord): Buffer {
  let size = 10 + 4 + (r.key ? 4 + r.key.length : 0) + (r.value?.length ?? 0);
  const names = r.headers.map((h) => Buffer.from(h.key, 'utf8'));
  r.headers.forEach((h, i) => (size += 8 + names[i]!.length + (h.value?.length ?? 0)));
  const out = Buffer.allocUnsafe(size);
  out[0] = FORMAT;
  out[1] = (r.key ? HAS_KEY : 0) | (r.value ? HAS_VALUE : 0);
  out.writeDoubleBE(r.timestamp, 2);
  let at = 10;
  if (r.key) {
    at = out.writeUInt32BE(r.key.length, at);
    at += r.key.copy(out, at);
  }
  at = out.writeUInt32BE(r.headers.length, at);
  r.headers.forEach((h, i) => {
    at = out.writeUInt32BE(names[i]!.length, at);
    at += names[i]!.copy(out, at);
    at = out.writeInt32BE(h.value ? h.value.length : -1, at);
    if (h.value) at += h.value.copy(out, at);
  });
  if (r.value) r.value.copy(out, at);
  return out;
}

export function decodeStoredRecord(lsn: number, stored: Buffer): LogRecord {
  if (stored[0] === LEGACY_JSON) return decodeLegacy(lsn, stored);
  if (stored[0] !== FORMAT || stored.length < 14) throw damaged(lsn, 'unknown record format');
  try {
    const flags = stored[1]!;
    const timestamp = stored.readDoubleBE(2);
    let at = 10;
    let keyBytes: Buffer | null = null;
    if (flags & HAS_KEY) {
      const n = stored.readUInt32BE(at);
      keyBytes = slice(stored, at + 4, n);
      at += 4 + n;
    }
    const headers: RecordHeader[] = [];
    const count = stored.readUInt32BE(at);
    at += 4;
    for (let i = 0; i < count; i++) {
      const n = stored.readUInt32BE(at);
      const key = slice(stored, at + 4, n).toString('utf8');
      at += 4 + n;
      const v = stored.readInt32BE(at);
      at += 4;
      headers.push({ key, value: v < 0 ? null : slice(stored, at, v) });
      if (v > 0) at += v;
    }
    const value = flags & HAS_VALUE ? stored.subarray(at) : null;
    return { lsn, key: keyText(keyBytes), keyBytes, value, headers, timestamp };
  } catch (err) {
    if (err instanceof CairnError) throw err;
    throw damaged(lsn, (err as Error).message);
  }
}

function slice(b: Buffer, at: number, n: number): Buffer {
  if (at + n > b.length) throw new RangeError(`field of ${n} bytes at ${at} runs past the record's ${b.length} bytes`);
  return b.subarray(at, at + n);
}

function decodeLegacy(lsn: number, stored: Buffer): LogRecord {
  let r: { k: string; v: unknown; t: number };
  try {
    r = JSON.parse(stored.toString('utf8')) as typeof r;
  } catch (err) {
    throw damaged(lsn, (err as Error).message);
  }
  const keyBytes = Buffer.from(r.k, 'utf8');
  return { lsn, key: r.k, keyBytes, value: Buffer.from(JSON.stringify(r.v), 'utf8'), headers: [], timestamp: r.t };
}

function damaged(lsn: number, why: string): CairnError {
  return new CairnError('CORRUPT', `embedded log record at LSN ${lsn} is damaged: ${why}`, { details: { lsn } });
}
