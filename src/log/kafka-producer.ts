import { randomBytes } from 'node:crypto';
import type { IHeaders, Kafka, Message, Producer, RecordMetadata } from 'kafkajs';
import { CairnError, badInput } from '../core/errors.js';
import type { KafkaCompression } from '../core/config.js';
import { kafkaError, withDeadline } from './kafka-client.js';
import { compressionType } from './kafka-codecs.js';
import { checkAppendRecord } from './records.js';
import type { AppendRecord, RecordHeader } from './types.js';

/**
 * Appends for the Kafka log. A call is validated and encoded completely before anything is
 * sent, so a bad record fails the whole call. A call that fits one record batch goes out as
 * one produce request on an idempotent producer: the broker appends a batch atomically and
 * gives it consecutive offsets from the returned base offset. A larger call is split into
 * batches inside one transaction, so readers (read_committed, as Cairn's are) see all of it
 * or none; its records may then interleave with other writers' and its commit leaves a
 * control record behind, so its LSNs are not necessarily consecutive.
 */

/** Per-record framing in a record batch (varint lengths, deltas, attributes): an upper bound. */
const RECORD_OVERHEAD = 32;
const BATCH_OVERHEAD = 61;

export interface EncodedRecords {
  messages: Message[];
  /** Bytes of each message as it will sit in a record batch (approximately, from above). */
  sizes: number[];
  bytes: number;
}

export function encodeRecords(records: AppendRecord[]): EncodedRecords {
  if (!Array.isArray(records)) throw badInput('append expects an array of records');
  const now = Date.now();
  const messages: Message[] = new Array(records.length);
  const sizes: number[] = new Array(records.length);
  let bytes = BATCH_OVERHEAD;
  for (let i = 0; i < records.length; i++) {
    const r = checkAppendRecord(records[i]!, i, now);
    const headers = r.headers.length > 0 ? kafkaHeaders(r.headers) : undefined;
    messages[i] = { key: r.key, value: r.value, timestamp: String(r.timestamp), ...(headers ? { headers } : {}) };
    sizes[i] = (r.key?.length ?? 0) + (r.value?.length ?? 0) + r.headers.reduce((n, h) => n + h.key.length + (h.value?.length ?? 0) + 8, 0) + RECORD_OVERHEAD;
    bytes += sizes[i]!;
  }
  return { messages, sizes, bytes };
}

/** kafkajs takes headers as an object; a repeated name becomes the array of its values, in order. */
function kafkaHeaders(headers: RecordHeader[]): IHeaders {
  const out: IHeaders = {};
  for (const { key, value } of headers) {
    const v = value!; // records.ts admits no null header values: kafkajs cannot size them
    const seen = out[key];
    out[key] = seen === undefined ? v : Array.isArray(seen) ? [...seen, v] : [seen, v];
  }
  return out;
}

/** Splits encoded records into runs of at most `maxBytes` (a larger single record stays alone). */
export function splitBatches(e: EncodedRecords, maxBytes: number): Message[][] {
  const out: Message[][] = [];
  let current: Message[] = [];
  let size = BATCH_OVERHEAD;
  e.messages.forEach((m, i) => {
    const s = e.sizes[i]!;
    if (current.length > 0 && size + s > maxBytes) {
      out.push(current);
      current = [];
      size = BATCH_OVERHEAD;
    }
    current.push(m);
    size += s;
  });
  if (current.length > 0) out.push(current);
  return out;
}

export interface AppenderOptions {
  kafka: Kafka;
  topic: string;
  clientId: string;
  /** Calls above this many bytes are split into batches inside a transaction. */
  maxBatchBytes: number;
  /** Bound on each connect, send, commit and disconnect (kafka-client.ts withDeadline). */
  timeoutMs: number;
  compression: KafkaCompression;
}

export class KafkaAppender {
  private producer: Promise<Producer> | undefined;
  private txProducer: Promise<Producer> | undefined;
  /** A transactional producer runs one transaction at a time. */
  private txTail: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: AppenderOptions) {}

  async append(partition: number, encoded: EncodedRecords): Promise<{ first: number; last: number }> {
    const what = `cannot append to ${this.o.topic}/${partition}`;
    if (encoded.bytes <= this.o.maxBatchBytes) {
      return this.guarded('producer', what, async (p) => {
        const meta = await this.bounded(p.send({ topic: this.o.topic, acks: -1, compression: compressionType(this.o.compression), messages: encoded.messages.map((m) => ({ ...m, partition })) }), what);
        const first = baseOffset(meta, this.o.topic, partition);
        return { first, last: first + encoded.messages.length - 1 };
      });
    }
    const run = this.txTail.then(() => this.appendInTransaction(partition, encoded, what));
    this.txTail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await Promise.all([this.drop('producer'), this.drop('txProducer')]);
  }

  private appendInTransaction(partition: number, encoded: EncodedRecords, what: string): Promise<{ first: number; last: number }> {
    return this.guarded('txProducer', what, async (p) => {
      const tx = await this.bounded(p.transaction(), what);
      try {
        let first = -1;
        let last = -1;
        for (const batch of splitBatches(encoded, this.o.maxBatchBytes)) {
          const meta = await this.bounded(tx.send({ topic: this.o.topic, acks: -1, compression: compressionType(this.o.compression), messages: batch.map((m) => ({ ...m, partition })) }), what);
          const base = baseOffset(meta, this.o.topic, partition);
          if (first < 0) first = base;
          last = base + batch.length - 1;
        }
        await this.bounded(tx.commit(), what);
        return { first, last };
      } catch (err) {
        // Aborting makes the sent batches invisible to read_committed readers; if even that
        // fails, the broker aborts the transaction when it times out.
        await this.bounded(tx.abort(), what).catch(() => undefined);
        throw err;
      }
    });
  }

  /**
   * Runs `fn` on a connected producer. After a failure the producer is dropped: its
   * sequence numbers (idempotence) or transaction state may no longer match the broker's, and
   * a fresh producer id is always safe.
   */
  private async guarded<T>(which: 'producer' | 'txProducer', what: string, fn: (p: Producer) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.connected(which));
    } catch (err) {
      void this.drop(which);
      throw kafkaError(err, what);
    }
  }

  private connected(which: 'producer' | 'txProducer'): Promise<Producer> {
    let pending = this[which];
    if (!pending) {
      const producer =
        which === 'producer'
          ? this.o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
          : this.o.kafka.producer({
              idempotent: true,
              maxInFlightRequests: 1,
              allowAutoTopicCreation: false,
              transactionalId: `${this.o.clientId}-append-${this.o.topic}-${randomBytes(6).toString('hex')}`,
            });
      pending = this.bounded(producer.connect(), `cannot connect a producer to ${this.o.topic}`).then(
        () => producer,
        (err: unknown) => {
          void producer.disconnect().catch(() => undefined);
          throw err;
        },
      );
      this[which] = pending;
      const current = pending;
      current.catch(() => {
        if (this[which] === current) this[which] = undefined;
      });
    }
    return pending;
  }

  private async drop(which: 'producer' | 'txProducer'): Promise<void> {
    const pending = this[which];
    this[which] = undefined;
    if (pending) await pending.then((p) => this.bounded(p.disconnect(), `disconnecting from ${this.o.topic}`)).catch(() => undefined);
  }

  private bounded<T>(work: Promise<T>, what: string): Promise<T> {
    return withDeadline(work, this.o.timeoutMs, what);
  }
}

function baseOffset(meta: RecordMetadata[], topic: string, partition: number): number {
  const m = meta.find((r) => r.topicName === topic && r.partition === partition);
  if (!m?.baseOffset) throw new CairnError('INTERNAL', `the broker did not acknowledge ${topic}/${partition} (no base offset in the produce response)`);
  return Number(m.baseOffset);
}
