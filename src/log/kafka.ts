import type { ConnectionOptions } from 'node:tls';
import type { Kafka } from 'kafkajs';
import type { KafkaCompression, KafkaSasl } from '../core/config.js';
import { KAFKA_DEFAULTS } from '../core/defaults.js';
import { CairnError, badInput } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { parseLsn } from '../core/names.js';
import { KafkaAdmin, createKafkaClient } from './kafka-client.js';
import { KafkaAppender, encodeRecords } from './kafka-producer.js';
import { PartitionReader } from './kafka-reader.js';
import { joinKafkaGroup } from './kafka-group.js';
import { KAFKA_LOG_CAPABILITIES, KafkaPartitionNames } from './kafka-partitions.js';
import type { AppendRecord, GroupMembership, GroupOptions, Log, LogCapabilities, LogInfo, LogRecord, ReadOptions } from './types.js';

/**
 * The Kafka log: Cairn partition `pN` is partition N of one topic (unless `partitions` maps
 * the name), and an LSN is a Kafka offset. Nothing connects until first use, so building a
 * KafkaLog never fails for a broker that is down; operations then fail with
 * LOG_UNAVAILABLE (retryable) once kafkajs has retried, and never later than
 * `operationTimeoutMs` (a broker that accepts connections and never answers included).
 *
 * Topics should have time and size retention off (retention.ms=-1, retention.bytes=-1):
 * the log start should move only when Cairn trims, behind its snapshots.
 */
export interface KafkaLogOptions {
  brokers: string[];
  topic: string;
  clientId?: string;
  /** Cairn partition name -> topic partition, for names that are not `p<N>`. */
  partitions?: Record<string, number>;
  /** Receives reconnect warnings and (at debug) kafkajs's own error lines; silent by default. */
  logger?: Logger;
  /** Per fetch, per partition. Larger fetches mean fewer round trips when catching up. */
  maxBytesPerPartition?: number;
  /** How long the broker holds a fetch open waiting for new records (the long poll). */
  maxWaitTimeInMs?: number;
  /** Decoded records a reader holds ahead of its caller before its consumer waits. */
  readAheadBytes?: number;
  /** Appends above this size are split into several batches in one transaction. */
  maxBatchBytes?: number;
  /** A reader whose consumer has not heard from the broker this long reports LOG_UNAVAILABLE and reconnects. */
  stallMs?: number;
  /** Retries inside kafkajs before an operation fails. */
  retries?: number;
  /** A TCP connect to a broker that takes longer fails (kafkajs connectionTimeout). */
  connectionTimeoutMs?: number;
  /** A request (the connect handshake included) without an answer this long fails (kafkajs requestTimeout). */
  requestTimeoutMs?: number;
  /**
   * The bound on each call into kafkajs, its retries included: an admin call, a client
   * connect, a send, a reader start, a disconnect. kafkajs bounds single requests only; a
   * silent broker would otherwise cost a request timeout per retry.
   */
  operationTimeoutMs?: number;
  /** What appends are compressed with (kafka-codecs.ts); reads decompress whatever they find. */
  compression?: KafkaCompression;
  /** TLS to the brokers (Node's tls.connect options); `true` trusts the system's CAs. */
  ssl?: ConnectionOptions | true;
  /** SASL authentication, the password already resolved. */
  sasl?: KafkaSasl;
}

/** Group members' client ids: `<clientId>-worker-<node>`. */
const MEMBER_INFIX = '-worker-';

export class KafkaLog implements Log {
  readonly capabilities: LogCapabilities = KAFKA_LOG_CAPABILITIES;
  private readonly names: KafkaPartitionNames;
  private readonly o: Required<Omit<KafkaLogOptions, 'logger' | 'ssl' | 'sasl'>> & Pick<KafkaLogOptions, 'ssl' | 'sasl'> & { logger: Logger };
  private client: Kafka | undefined;
  private adminClient: KafkaAdmin | undefined;
  private appender: KafkaAppender | undefined;
  private readonly readers = new Map<number, PartitionReader>();
  private readonly memberships = new Set<GroupMembership>();
  private closed = false;

  constructor(options: KafkaLogOptions) {
    this.o = {
      // Client id, codec and every tuning default, with why each is what it is: core/defaults.ts.
      ...KAFKA_DEFAULTS,
      partitions: {},
      logger: silentLogger,
      ...definedOnly(options),
      brokers: options.brokers,
      topic: options.topic,
    };
    this.names = new KafkaPartitionNames(this.o.topic, this.o.partitions);
  }

  source(partition: string): string {
    return this.names.sourceOf(partition);
  }

  async partitions(): Promise<string[]> {
    if (this.closed) throw new CairnError('ABORTED', 'the kafka log is closed');
    const count = await this.admin().partitionCount();
    return Array.from({ length: count }, (_, n) => this.names.nameOf(n)).sort();
  }

  async append(partition: string, records: AppendRecord[]): Promise<{ first: number; last: number }> {
    const n = this.topicPartition(partition);
    const encoded = encodeRecords(records);
    await this.admin().checkPartition(n);
    if (encoded.messages.length === 0) {
      const { end } = await this.admin().watermarks(n);
      return { first: end, last: end - 1 };
    }
    this.appender ??= new KafkaAppender({
      kafka: this.kafka(),
      topic: this.o.topic,
      clientId: this.o.clientId,
      maxBatchBytes: this.o.maxBatchBytes,
      timeoutMs: this.o.operationTimeoutMs,
      compression: this.o.compression,
    });
    return this.appender.append(n, encoded);
  }

  async read(partition: string, fromLsn: number, options: ReadOptions): Promise<LogRecord[]> {
    const n = this.topicPartition(partition);
    const from = parseLsn(fromLsn, 'fromLsn');
    const max = options.maxRecords;
    if (!Number.isSafeInteger(max) || max < 1) throw badInput(`invalid maxRecords ${String(max)}: expected a positive integer`);
    const toLsn = options.toLsn === undefined ? undefined : parseLsn(options.toLsn, 'toLsn');
    return this.reader(n).read(from, { ...options, ...(toLsn === undefined ? {} : { toLsn }) });
  }

  async info(partition: string): Promise<LogInfo> {
    const n = this.topicPartition(partition);
    return this.admin().watermarks(n);
  }

  async trim(partition: string, beforeLsn: number): Promise<LogInfo> {
    const n = this.topicPartition(partition);
    const before = parseLsn(beforeLsn, 'beforeLsn');
    const admin = this.admin();
    const { start, end } = await admin.watermarks(n);
    const target = Math.min(before, end);
    if (target <= start) return { start, end };
    await admin.deleteBefore(n, target);
    this.readers.get(n)?.trimmed(target);
    return admin.watermarks(n);
  }

  /** Joins consumer group `options.group` on the topic (kafka-group.ts); members leave on close too. */
  async joinGroup(options: GroupOptions): Promise<GroupMembership> {
    if (this.closed) throw new CairnError('ABORTED', 'the kafka log is closed');
    const membership = await joinKafkaGroup({
      ...options,
      // A client of its own: its client id names the worker, which other members read back
      // (describeGroups) to tell a live previous owner from a dead one.
      kafka: this.newClient(`${this.o.clientId}${MEMBER_INFIX}${options.member}`),
      admin: this.admin(),
      memberOf: (clientId) => (clientId.startsWith(`${this.o.clientId}${MEMBER_INFIX}`) ? clientId.slice(this.o.clientId.length + MEMBER_INFIX.length) : undefined),
      topic: this.o.topic,
      nameOf: (n) => this.names.nameOf(n),
      numberOf: (name) => this.names.numberOf(name),
      timeoutMs: this.o.operationTimeoutMs,
      logger: this.o.logger,
    });
    this.memberships.add(membership);
    return membership;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const readers = [...this.readers.values()];
    this.readers.clear();
    // Each bounded by operationTimeoutMs: a disconnect can wait behind a request to a silent broker.
    // Readers first: each deletes its consumer group through the admin client on the way out.
    await Promise.all([...readers.map((r) => r.close()), this.appender?.close()]);
    await this.adminClient?.close();
  }

  /** The topic partition of an operation on an open log. */
  private topicPartition(partition: string): number {
    const n = this.names.numberOf(partition);
    if (this.closed) throw new CairnError('ABORTED', 'the kafka log is closed');
    return n;
  }

  private kafka(): Kafka {
    this.client ??= this.newClient(this.o.clientId);
    return this.client;
  }

  private newClient(clientId: string): Kafka {
    return createKafkaClient({
      brokers: this.o.brokers,
      clientId,
      logger: this.o.logger,
      retries: this.o.retries,
      connectionTimeoutMs: this.o.connectionTimeoutMs,
      requestTimeoutMs: this.o.requestTimeoutMs,
      ...(this.o.ssl ? { ssl: this.o.ssl } : {}),
      ...(this.o.sasl ? { sasl: this.o.sasl } : {}),
    });
  }

  private admin(): KafkaAdmin {
    this.adminClient ??= new KafkaAdmin(this.kafka(), this.o.topic, this.o.operationTimeoutMs);
    return this.adminClient;
  }

  private reader(n: number): PartitionReader {
    let reader = this.readers.get(n);
    if (!reader) {
      const admin = this.admin();
      reader = new PartitionReader({
        kafka: this.kafka(),
        topic: this.o.topic,
        partition: n,
        clientId: this.o.clientId,
        maxBytesPerPartition: this.o.maxBytesPerPartition,
        maxWaitTimeInMs: this.o.maxWaitTimeInMs,
        readAheadBytes: this.o.readAheadBytes,
        stallMs: this.o.stallMs,
        retries: this.o.retries,
        timeoutMs: this.o.operationTimeoutMs,
        logger: this.o.logger,
        watermarks: () => admin.watermarks(n),
        deleteGroup: (groupId) => admin.deleteGroups([groupId]),
      });
      this.readers.set(n, reader);
    }
    return reader;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
