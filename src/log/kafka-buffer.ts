import type { IHeaders, KafkaMessage } from 'kafkajs';
import { keyText } from './records.js';
import type { LogRecord, RecordHeader } from './types.js';

/**
 * Decoding of fetched messages and the read-ahead buffer a Kafka partition reader fills
 * from its consumer and serves reads from.
 */

/**
 * Heap a buffered message costs beyond its key and value bytes (kafkajs's message object,
 * its offset and timestamp strings): a rough figure, used only to bound read-ahead memory.
 */
const RECORD_OVERHEAD_BYTES = 160;

/** A fetched message as the log hands it out: bytes, decoded by the runtime (types.ts LogRecord). */
export function decodeMessage(m: KafkaMessage, lsn: number): LogRecord {
  const keyBytes = m.key ?? null;
  return { lsn, key: keyText(keyBytes), keyBytes, value: m.value ?? null, headers: headerList(m.headers), timestamp: Number(m.timestamp) };
}

/**
 * kafkajs hands headers over as an object, a repeated name as an array of its values; the
 * log's form is the list Kafka stores (names in first-seen order, a name's values in order).
 */
function headerList(headers: IHeaders | undefined): RecordHeader[] {
  if (!headers) return [];
  const out: RecordHeader[] = [];
  for (const [key, v] of Object.entries(headers)) {
    for (const value of Array.isArray(v) ? v : [v]) out.push({ key, value: value === undefined || value === null ? null : Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8') });
  }
  return out;
}

export function messageBytes(m: KafkaMessage): number {
  return (m.value?.length ?? 0) + (m.key?.length ?? 0) + RECORD_OVERHEAD_BYTES;
}

interface Chunk {
  messages: KafkaMessage[];
  /** The messages' offsets as numbers, for searching. */
  lsns: Float64Array;
  bytes: number;
}

/**
 * Fetched messages in offset order, in the chunks they were fetched in; reads take from the
 * front. Messages are decoded when taken, not when fetched: decoded values then live only
 * as long as the caller keeps them, instead of ageing in the buffer into the old generation,
 * where collecting them costs far more.
 */
export class RecordBuffer {
  private chunks: Chunk[] = [];
  /** Index of the first unread message in chunks[0]. */
  private head = 0;
  /** Estimated heap held; a chunk counts in full until its last message is taken. */
  bytes = 0;

  get isEmpty(): boolean {
    return this.chunks.length === 0;
  }

  push(messages: KafkaMessage[], lsns: Float64Array, bytes: number): void {
    if (messages.length === 0) return;
    this.chunks.push({ messages, lsns, bytes });
    this.bytes += bytes;
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.bytes = 0;
  }

  /** Drops messages below `lsn` (they were trimmed, or the reader asked for later ones). */
  dropBelow(lsn: number): void {
    while (this.chunks.length > 0) {
      const { lsns } = this.chunks[0]!;
      this.head = lowerBound(lsns, lsn, this.head, lsns.length);
      if (this.head < lsns.length) return;
      this.shift();
    }
  }

  /** Removes and decodes up to `max` records with from <= lsn <= toLsn, dropping those below `from`. */
  take(from: number, max: number, toLsn = Number.MAX_SAFE_INTEGER): LogRecord[] {
    this.dropBelow(from);
    const out: LogRecord[] = [];
    while (this.chunks.length > 0 && out.length < max) {
      const { messages, lsns } = this.chunks[0]!;
      let end = Math.min(lsns.length, this.head + (max - out.length));
      if (lsns[end - 1]! > toLsn) end = lowerBound(lsns, toLsn + 1, this.head, end);
      for (let i = this.head; i < end; i++) out.push(decodeMessage(messages[i]!, lsns[i]!));
      this.head = Math.max(this.head, end);
      if (end < lsns.length) break;
      this.shift();
    }
    return out;
  }

  private shift(): void {
    this.bytes -= this.chunks.shift()!.bytes;
    this.head = 0;
  }
}

/** First index in [lo, hi) whose lsn is >= `lsn` (lsns are ascending). */
function lowerBound(lsns: Float64Array, lsn: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (lsns[mid]! < lsn) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
