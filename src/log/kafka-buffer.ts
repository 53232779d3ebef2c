import { isUtf8 } from 'node:buffer';
import type { KafkaMessage } from 'kafkajs';
import type { LogRecord } from './types.js';

/**
 * Decoding of fetched messages and the read-ahead buffer a Kafka partition reader fills
 * from its consumer and serves reads from.
 */

/**
 * Heap a buffered message costs beyond its key and value bytes (kafkajs's message object,
 * its offset and timestamp strings): a rough figure, used only to bound read-ahead memory.
 */
const RECORD_OVERHEAD_BYTES = 160;

/**
 * A message whose value cannot be decoded is still returned, with `decodeError`: dropping
 * it would silently move the reader forward, and the runtime's onBadRecord policy decides.
 */
export function decodeMessage(m: KafkaMessage, lsn: number): LogRecord {
  const key = m.key ? m.key.toString('utf8') : '';
  const timestamp = Number(m.timestamp);
  const raw = m.value;
  if (!raw) return { lsn, key, value: undefined, timestamp, decodeError: 'the record has no value (null, e.g. a tombstone)' };
  // toString() would replace bad bytes with U+FFFD and could yield a valid but wrong value.
  if (!isUtf8(raw)) return { lsn, key, value: undefined, timestamp, decodeError: 'the value is not valid UTF-8' };
  try {
    return { lsn, key, value: JSON.parse(raw.toString('utf8')) as unknown, timestamp };
  } catch (err) {
    return { lsn, key, value: undefined, timestamp, decodeError: `the value is not JSON: ${(err as Error).message}` };
  }
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
