import { randomBytes } from 'node:crypto';
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { CairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { RecordBuffer, messageBytes } from './kafka-buffer.js';
import { kafkaError, singlePartitionAssigner, unreadableBatch, withDeadline } from './kafka-client.js';
import type { LogInfo, LogRecord, ReadOptions } from './types.js';
import { Wakeup } from './wakeup.js';

/**
 * Reads one topic partition for the Kafka log through one long-lived kafkajs consumer that
 * fetches ahead into a bounded buffer.
 *
 * Position. The reader, not Kafka, owns the position: `next` is the offset the consumer
 * should fetch next and `base` the lowest offset the buffer speaks for, so the buffer holds
 * exactly the log's records in [base, next). A read from inside that range is served from
 * the buffer; any other read re-seeks, after checking the log start (a seek below it would
 * make kafkajs reset to the earliest offset, i.e. silently move forward). Nothing is ever
 * committed: each reader is the only member of a group of its own (see Groups).
 *
 * Trusting batches. kafkajs moves its own position too: after a rejoin or a crash it starts
 * over from the log start, after OFFSET_OUT_OF_RANGE (the log start passed us) it resets,
 * and it skips batches that hold only control or aborted records. So a batch is taken only
 * when it was fetched at or below `next` and reaches past it; one fetched below and ending
 * below makes us seek back to `next`; one fetched above `next` is explained by the log
 * start: above `next` means a trim gap (kept until the caller re-seeks, so every read of the
 * missing offsets throws TRIM_GAP), otherwise the offsets in between hold no records.
 *
 * Groups. kafkajs cannot read a partition without a consumer group, so each consumer joins
 * a group of its own (`<clientId>-reader-<topic>-<partition>-<random>`), never commits an
 * offset in it, and deletes it after disconnecting: a reader leaves nothing on the broker.
 * A process killed before that leaves an empty group without offsets, which the broker
 * drops by itself at its next offsets-retention check.
 *
 * Backpressure. eachBatch appends the batch's messages to the buffer (reads decode them)
 * and, above `readAheadBytes`, waits (with heartbeats) until reads drain it to half;
 * kafkajs fetches again only after it returns.
 *
 * Failures. A crashed consumer (kafkajs gave up retrying) or one silent for `stallMs`
 * makes reads throw LOG_UNAVAILABLE (retryable); the next read builds a new consumer that
 * seeks to `next`. Buffered records survive, so nothing is lost or returned twice.
 */
export interface ReaderSettings {
  kafka: Kafka;
  topic: string;
  partition: number;
  clientId: string;
  maxBytesPerPartition: number;
  maxWaitTimeInMs: number;
  readAheadBytes: number;
  stallMs: number;
  retries: number;
  /** Bound on starting a consumer (connect, subscribe, join) and on a disconnect. */
  timeoutMs: number;
  logger: Logger;
  watermarks(): Promise<LogInfo>;
  /** Deletes a consumer group this reader used, once its consumer has left it. */
  deleteGroup(groupId: string): Promise<void>;
}

const HEARTBEAT_EVERY_MS = 1000;
/** The broker's lower bound (group.min.session.timeout.ms) is 6 s by default. */
const READER_SESSION_TIMEOUT_MS = 10_000;

export class PartitionReader {
  private consumer: Consumer | undefined;
  private failure: Error | undefined;
  private readonly buffer = new RecordBuffer();
  private base = -1;
  private next = -1;
  /** Bumped on every re-seek: work begun for an older position is dropped. */
  private epoch = 0;
  private gap: { start: number } | undefined;
  private lastProgressAt = 0;
  /** eachBatch calls holding their consumer (full buffer or trim gap): silence is expected. */
  private holding = 0;
  private readonly wakeup = new Wakeup();
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly groups = new WeakMap<Consumer, string>();
  /** Consumers being disconnected and their groups deleted; close() waits for them. */
  private readonly retiring = new Set<Promise<void>>();

  constructor(private readonly s: ReaderSettings) {}

  /** Reads are serialised: the reader follows one position at a time. */
  read(from: number, options: ReadOptions): Promise<LogRecord[]> {
    const run = this.tail.then(() => this.readNow(from, options));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** The log start moved to `start` through this process: buffered records below it are gone. */
  trimmed(start: number): void {
    this.buffer.dropBelow(start);
    if (this.base >= 0) this.base = Math.max(this.base, Math.min(start, this.next));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.notify();
    const consumer = this.consumer;
    this.consumer = undefined;
    if (consumer) this.retire(consumer);
    await Promise.all(this.retiring);
  }

  /** Disconnects a consumer this reader is done with, then deletes its group. Never throws. */
  private retire(consumer: Consumer): void {
    const groupId = this.groups.get(consumer);
    const done = withDeadline(consumer.disconnect(), this.s.timeoutMs, 'disconnecting a reader')
      .then(() => (groupId ? this.s.deleteGroup(groupId) : undefined))
      .catch((err: unknown) => this.s.logger.debug({ groupId, err }, 'kafka reader: could not delete its consumer group'))
      .finally(() => this.retiring.delete(done));
    this.retiring.add(done);
  }

  private async readNow(from: number, o: ReadOptions): Promise<LogRecord[]> {
    if (this.closed) return [];
    if (!(this.base >= 0 && this.base <= from && from <= this.next)) await this.reposition(from);
    await this.ensureConsumer();
    const started = Date.now();
    const waitUntil = started + (o.waitMs ?? 0);
    let end: number | undefined;
    for (;;) {
      if (this.gap && from < this.gap.start) throw trimGap(this.s, from, this.gap.start);
      const records = this.buffer.take(from, o.maxRecords, o.toLsn);
      this.base = records.length > 0 ? records[records.length - 1]!.lsn + 1 : Math.max(this.base, Math.min(from, this.next));
      if (records.length > 0 || !this.buffer.isEmpty) {
        this.notify();
        return records; // [] here: what is buffered lies beyond toLsn
      }
      if ((o.toLsn !== undefined && from > o.toLsn) || this.closed || o.signal?.aborted) return [];
      this.throwIfUnhealthy();
      const now = Date.now();
      if (now >= waitUntil) {
        // Nothing buffered, the wait is over; but records the log held when the call began
        // must still come back, so ask once where it ends and catch up to there.
        if (end === undefined) {
          const info = await this.s.watermarks();
          if (from < info.start) throw trimGap(this.s, from, info.start);
          end = info.end;
          continue; // a batch may have landed meanwhile
        }
        if (this.next >= end) return [];
        if (now - started > this.s.stallMs) throw unavailable(this.s, `did not reach offset ${end} within ${this.s.stallMs} ms`);
      }
      // Woken by every batch, skipped batch, crash and close; the timeout only re-checks health.
      await this.waitForChange(now < waitUntil ? Math.min(waitUntil - now, HEARTBEAT_EVERY_MS) : HEARTBEAT_EVERY_MS, o.signal);
    }
  }

  private async reposition(from: number): Promise<void> {
    const { start, end } = await this.s.watermarks();
    if (from < start) throw trimGap(this.s, from, start);
    // Never seek past the end: that is OFFSET_OUT_OF_RANGE, and kafkajs would reset.
    const target = Math.min(from, end);
    this.epoch++;
    this.buffer.clear();
    this.gap = undefined;
    this.base = this.next = target;
    this.notify(); // releases an eachBatch held for room or at a gap
    this.seekConsumer();
  }

  private seekConsumer(): void {
    try {
      this.consumer?.seek({ topic: this.s.topic, partition: this.s.partition, offset: String(this.next) });
    } catch {
      // Not running (crashed or stopping): a new consumer seeks to `next` when it starts.
    }
  }

  private async ensureConsumer(): Promise<void> {
    const stalled = this.holding === 0 && Date.now() - this.lastProgressAt > this.s.stallMs;
    if (this.consumer && !this.failure && !stalled) return;
    const old = this.consumer;
    if (old) {
      const why = this.failure ? `its consumer stopped: ${this.failure.message}` : `no answer from the broker for ${Date.now() - this.lastProgressAt} ms`;
      this.s.logger.warn({ topic: this.s.topic, partition: this.s.partition, offset: this.next }, `kafka reader reconnecting (${why})`);
      this.retire(old);
    }
    this.failure = undefined;
    const consumer = this.createConsumer();
    this.consumer = consumer;
    this.lastProgressAt = Date.now();
    const start = async () => {
      // Past the deadline this consumer is dropped (and disconnected): do not start it late.
      const dropped = () => this.consumer !== consumer || this.closed;
      await consumer.connect();
      if (dropped()) return;
      await consumer.subscribe({ topic: this.s.topic, fromBeginning: true });
      if (dropped()) return;
      const running = consumer.run({ autoCommit: false, eachBatch: (payload) => this.onBatch(consumer, payload) });
      // run() creates the group synchronously, so this seek is in place before the first
      // fetch; fromBeginning only matters when kafkajs resets, and then it lands on the log
      // start, which the batch checks can tell from a real position.
      this.seekConsumer();
      await running;
    };
    try {
      await withDeadline(start(), this.s.timeoutMs, `cannot start a reader for ${this.s.topic}/${this.s.partition}`);
    } catch (err) {
      this.failure = err as Error;
    }
    if (this.failure) {
      const cause = this.failure;
      if (this.consumer === consumer) this.consumer = undefined;
      this.retire(consumer);
      throw kafkaError(cause, `cannot start a reader for ${this.s.topic}/${this.s.partition}`);
    }
  }

  private createConsumer(): Consumer {
    const { topic, partition } = this.s;
    const groupId = `${this.s.clientId}-reader-${topic}-${partition}-${randomBytes(6).toString('hex')}`;
    const consumer = this.s.kafka.consumer({
      groupId,
      partitionAssigners: [singlePartitionAssigner(topic, partition)],
      maxBytesPerPartition: this.s.maxBytesPerPartition,
      maxBytes: 2 * this.s.maxBytesPerPartition,
      minBytes: 1,
      maxWaitTimeInMs: this.s.maxWaitTimeInMs,
      // The group is private and holds no offsets: a member of a killed process should leave
      // it soon, so the group can be deleted (kafkajs's default is 30 s).
      sessionTimeout: READER_SESSION_TIMEOUT_MS,
      allowAutoTopicCreation: false,
      // We rebuild a crashed consumer ourselves, so that its position comes from us.
      retry: { retries: this.s.retries, initialRetryTime: 300, maxRetryTime: 3000, restartOnFailure: async () => false },
    });
    this.groups.set(consumer, groupId);
    const current = () => this.consumer === consumer && !this.closed;
    const progress = () => {
      if (current()) this.lastProgressAt = Date.now();
    };
    consumer.on(consumer.events.FETCH, progress);
    consumer.on(consumer.events.GROUP_JOIN, () => {
      progress();
      // A rejoin resets kafkajs's position to the log start; point it back at ours.
      if (current() && !this.gap) this.seekConsumer();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (this.consumer !== consumer) return;
      this.failure = payload.error;
      this.notify();
    });
    consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => {
      if (current() && payload.batchSize === 0) this.onFilteredBatch(payload.firstOffset, payload.lastOffset);
    });
    return consumer;
  }

  /**
   * kafkajs skips a batch holding only control or aborted records without calling eachBatch
   * and moves on past it; when the batch covers `next`, no record lies before its end. One
   * that starts above `next` (compaction removed what came before) is not taken: the next
   * data batch then passes the log-start check, but at the very end of a compacted,
   * transactional topic a read cannot tell and reports LOG_UNAVAILABLE. Cairn's topics are
   * not compacted.
   */
  private onFilteredBatch(firstOffset: string | null, lastOffset: string): void {
    const last = Number(lastOffset);
    const first = firstOffset === null ? last : Number(firstOffset);
    if (this.gap || first > this.next || last < this.next) return;
    this.next = last + 1;
    this.notify();
  }

  private async onBatch(consumer: Consumer, { batch, isStale, heartbeat }: EachBatchPayload): Promise<void> {
    if (this.consumer !== consumer || this.closed || isStale()) return;
    this.lastProgressAt = Date.now();
    const epoch = this.epoch;
    const stillValid = () => this.consumer === consumer && !this.closed && this.epoch === epoch && !isStale();
    if (this.gap) return this.hold(heartbeat, () => stillValid());
    const fetched = Number((batch as unknown as { fetchedOffset: string }).fetchedOffset);
    const last = Number(batch.lastOffset());
    if (fetched > this.next) {
      const start = await this.s.watermarks().then(
        (info) => info.start,
        () => undefined,
      );
      if (!stillValid()) return;
      if (start === undefined) return this.seekConsumer(); // cannot tell why: fetch `next` again
      if (start > this.next) {
        this.gap = { start };
        this.notify();
        return this.hold(heartbeat, () => stillValid());
      }
    } else if (last < this.next) {
      return this.seekConsumer();
    }
    const all = batch.messages;
    let skip = 0;
    while (skip < all.length && Number(all[skip]!.offset) < this.next) skip++;
    const messages = skip === 0 ? all : all.slice(skip);
    const lsns = new Float64Array(messages.length);
    let bytes = 0;
    for (let i = 0; i < messages.length; i++) {
      lsns[i] = Number(messages[i]!.offset);
      bytes += messageBytes(messages[i]!);
    }
    this.buffer.push(messages, lsns, bytes);
    this.next = last + 1;
    this.notify();
    if (this.buffer.bytes > this.s.readAheadBytes) {
      await this.hold(heartbeat, () => stillValid() && this.buffer.bytes > this.s.readAheadBytes / 2);
    }
  }

  /** Keeps eachBatch (and so the next fetch) waiting while `keep()` holds. */
  private async hold(heartbeat: () => Promise<void>, keep: () => boolean): Promise<void> {
    this.holding++;
    try {
      while (keep()) {
        await this.waitForChange(HEARTBEAT_EVERY_MS);
        if (keep()) await heartbeat().catch(() => undefined);
      }
    } finally {
      this.holding--;
      this.lastProgressAt = Date.now();
    }
  }

  private throwIfUnhealthy(): void {
    const unreadable = this.failure && unreadableBatch(this.failure);
    if (unreadable) {
      throw new CairnError('CORRUPT', `kafka reader for ${this.s.topic}/${this.s.partition} cannot read the record batch at offset ${this.next}: ${unreadable}`, {
        cause: this.failure,
        details: { topic: this.s.topic, partition: this.s.partition, lsn: this.next },
      });
    }
    if (this.failure) throw unavailable(this.s, `its consumer stopped (${this.failure.message}); the next read reconnects`, this.failure);
    if (this.holding === 0 && Date.now() - this.lastProgressAt > this.s.stallMs) {
      throw unavailable(this.s, `no answer from the broker for ${Date.now() - this.lastProgressAt} ms; the next read reconnects`);
    }
  }

  private notify(): void {
    this.wakeup.notify();
  }

  /** Resolves on notify(), after `ms`, or on abort. */
  private waitForChange(ms: number, signal?: AbortSignal): Promise<void> {
    return this.wakeup.wait(ms, signal);
  }
}

function trimGap(s: ReaderSettings, requested: number, start: number): CairnError {
  return new CairnError('TRIM_GAP', `${s.topic}/${s.partition} starts at offset ${start}; offset ${requested} was trimmed`, {
    details: { requested, start },
  });
}

function unavailable(s: ReaderSettings, why: string, cause?: unknown): CairnError {
  return new CairnError('LOG_UNAVAILABLE', `kafka reader for ${s.topic}/${s.partition}: ${why}`, { retryable: true, ...(cause ? { cause } : {}) });
}
