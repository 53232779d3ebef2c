import { AssignerProtocol, Kafka, logLevel, type Admin, type LogEntry, type PartitionAssigner, type SASLOptions } from 'kafkajs';
import type { ConnectionOptions } from 'node:tls';
import type { KafkaSasl } from '../core/config.js';
import { CairnError } from '../core/errors.js';
import { registerKafkaCodecs } from './kafka-codecs.js';
import type { Logger } from '../core/logger.js';
import type { LogInfo } from './types.js';

/**
 * What the Kafka log shares between its admin client, producers and readers: the kafkajs
 * client (logging routed away from stdout), the mapping of kafkajs errors onto Cairn's
 * closed list of codes, the admin calls the log needs, and the partition assigner that
 * gives each reader exactly its one partition.
 */
export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** Retries inside kafkajs before an operation fails with LOG_UNAVAILABLE. */
  retries: number;
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
  ssl?: ConnectionOptions | true;
  sasl?: KafkaSasl;
}

/**
 * kafkajs bounds each request (requestTimeout) and each TCP connect (connectionTimeout),
 * but not what it builds from them: a broker that accepts connections and never answers
 * costs a full request timeout per attempt, times every retry, and a connect or a
 * disconnect can wait behind such a request. So every call Cairn makes into kafkajs (an
 * admin call, a client connect, a send, a consumer start, a disconnect) is raced against
 * this deadline too, and losing the race is LOG_UNAVAILABLE: no wait on a broker is longer.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CairnError('LOG_UNAVAILABLE', `${what}: no answer from the broker within ${ms} ms`, { retryable: true, details: { timeoutMs: ms } })), ms);
  });
  // The loser may still settle later (kafkajs gives up on its own): never unhandled.
  work.catch(() => undefined);
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

export function createKafkaClient(o: KafkaClientOptions): Kafka {
  registerKafkaCodecs();
  return new Kafka({
    clientId: o.clientId,
    brokers: o.brokers,
    // kafkajs logs to the console by default; the CLI's stdout must stay one JSON document.
    logLevel: logLevel.ERROR,
    logCreator: () => (entry: LogEntry) => forwardLog(o.logger, entry),
    connectionTimeout: o.connectionTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    retry: { retries: o.retries, initialRetryTime: 200, maxRetryTime: 3000 },
    ...(o.ssl ? { ssl: o.ssl } : {}),
    ...(o.sasl ? { sasl: saslOptions(o.sasl) } : {}),
  });
}

/** kafkajs types each mechanism apart; the config's one union maps onto them here. */
function saslOptions({ mechanism, username, password }: KafkaSasl): SASLOptions {
  switch (mechanism) {
    case 'plain':
      return { mechanism, username, password };
    case 'scram-sha-256':
      return { mechanism, username, password };
    case 'scram-sha-512':
      return { mechanism, username, password };
  }
}

function forwardLog(logger: Logger, { namespace, log }: LogEntry): void {
  const { message, timestamp: _timestamp, logger: _name, stack: _stack, ...extra } = log as { message: string; [key: string]: unknown };
  // kafkajs calls ERROR every refused connection of every retry, and what Cairn handles
  // itself (a crashed consumer, an offset reset). Debug detail: the outcome that matters
  // reaches the caller as a CairnError, and the reader logs its own reconnects.
  logger.debug({ kafka: namespace, ...extra }, `kafkajs: ${message}`);
}

interface KafkaJSErrorLike {
  name?: string;
  type?: string;
  code?: unknown;
  message?: string;
  retriable?: boolean;
  cause?: unknown;
  originalError?: unknown;
  partitions?: Array<{ error?: unknown }>;
}

/** kafkajs wraps causes in several ways (retries exceeded, bail, per-partition errors). */
function errorChain(err: unknown): KafkaJSErrorLike[] {
  const out: KafkaJSErrorLike[] = [];
  const visit = (e: unknown, depth: number) => {
    if (e === null || typeof e !== 'object' || depth > 6) return;
    const k = e as KafkaJSErrorLike;
    out.push(k);
    visit(k.cause, depth + 1);
    if (k.originalError !== k.cause) visit(k.originalError, depth + 1);
    for (const p of k.partitions ?? []) visit(p.error, depth + 1);
  };
  visit(err, 0);
  return out;
}

/** Kafka's error types (e.g. `ILLEGAL_GENERATION`) anywhere in what kafkajs threw. */
export function kafkaErrorTypes(err: unknown): string[] {
  return errorChain(err)
    .map((e) => e.type)
    .filter((t): t is string => typeof t === 'string');
}

const NOT_FOUND_TYPES = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID']);
/** The request itself is wrong: retrying the same records cannot succeed. */
const BAD_INPUT_TYPES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_TIMESTAMP', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TOPIC_EXCEPTION']);
/** The broker refuses for a reason that waiting does not fix (authorisation, versions, policy). */
const PERMANENT_TYPES = /AUTHORIZATION_FAILED|AUTHENTICATION|UNSUPPORTED_VERSION|POLICY_VIOLATION|INVALID_CONFIG|UNSUPPORTED_FOR_MESSAGE_FORMAT/;
const TRANSIENT_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSLockTimeout',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSGroupCoordinatorNotFound',
]);

/** Socket errors of a connection that failed or broke: the network, not the request. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'ERR_SOCKET_CLOSED']);
/** Node's codes for a certificate the client does not accept, or a TLS handshake that failed. */
const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_|ERR_SSL_|^EPROTO$/;
/** JavaScript errors kafkajs itself never retries (its UNRECOVERABLE_ERRORS): a bug, not an outage. */
const PROGRAMMING_ERRORS = new Set(['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError']);

/**
 * Maps anything a kafkajs call throws onto a CairnError: NOT_FOUND for a missing topic or
 * partition, BAD_INPUT for records the broker refuses, LOG_UNAVAILABLE for everything else,
 * retryable unless the broker refused for a permanent reason.
 *
 * Everything else includes what is not a KafkaJS error at all: kafkajs lets plain errors
 * escape (a socket error, or `Error('Broker not connected')` when a request timed out on a
 * broker that accepts connections but never answers, and the retry finds the socket open
 * but the handshake never done). Those are the client failing to talk to the broker, so
 * an outage, never INTERNAL. Only JavaScript errors that kafkajs itself treats as
 * unrecoverable (TypeError and the like) are not retryable: a worker stops on them instead
 * of retrying a bug forever; they are still LOG_UNAVAILABLE, since it happened in the log
 * client, and the message names the original error.
 */
export function kafkaError(err: unknown, what: string): CairnError {
  if (err instanceof CairnError) return err;
  const chain = errorChain(err);
  const types = chain.map((e) => e.type).filter((t): t is string => typeof t === 'string');
  const innermost = chain.at(-1) ?? {};
  const reason = types.length > 0 ? `${innermost.message ?? String(err)} (${types.join(' < ')})` : (innermost.message ?? String(err));
  const message = `${what}: ${reason}`;
  if (types.some((t) => NOT_FOUND_TYPES.has(t))) return new CairnError('NOT_FOUND', message, { cause: err });
  if (types.some((t) => BAD_INPUT_TYPES.has(t))) return new CairnError('BAD_INPUT', message, { cause: err });
  if (types.some((t) => PERMANENT_TYPES.test(t))) return new CairnError('LOG_UNAVAILABLE', message, { cause: err, retryable: false });
  // Credentials or certificates the broker (or we) refuse: no retry changes them.
  if (chain.some((e) => e.name === 'KafkaJSSASLAuthenticationError')) {
    return new CairnError('LOG_UNAVAILABLE', `${what}: authentication failed (check log.sasl and the password variable): ${innermost.message ?? String(err)}`, { cause: err, retryable: false });
  }
  const tls = chain.find((e) => typeof e.code === 'string' && TLS_CODES.test(e.code));
  if (tls) return new CairnError('LOG_UNAVAILABLE', `${what}: TLS handshake failed (check log.ssl): ${String(tls.code)}: ${tls.message ?? ''}`, { cause: err, retryable: false });
  const kafkajs = chain.some((e) => e.name?.startsWith('KafkaJS'));
  const socket = chain.some((e) => typeof e.code === 'string' && SOCKET_CODES.has(e.code));
  const transient = socket || chain.some((e) => e.retriable === true || TRANSIENT_NAMES.has(e.name ?? ''));
  const bug = !transient && chain.some((e) => PROGRAMMING_ERRORS.has(e.name ?? ''));
  if (bug) return new CairnError('LOG_UNAVAILABLE', `${what}: the Kafka client failed: ${innermost.name ?? 'Error'}: ${innermost.message ?? String(err)}`, { cause: err, retryable: false });
  // A KafkaJS error with a broker error code that is none of the above says itself whether
  // it is retriable; anything without one (a timeout, a socket, a plain error) is an outage.
  return new CairnError('LOG_UNAVAILABLE', message, { cause: err, retryable: transient || types.length === 0 || !kafkajs });
}

/**
 * Why a fetched record batch cannot be read at all, when that is what an error says: a
 * codec kafkajs does not have, or one that refuses the bytes (kafka-codecs.ts names itself
 * in its messages). Fetching the same batch again gives the same answer, so this is a
 * damaged log for the reader, not an outage to wait out.
 */
export function unreadableBatch(err: unknown): string | undefined {
  const hit = errorChain(err).find((e) => e.name === 'KafkaJSNotImplemented' || /^(?:snappy|lz4|zstd): cannot decompress/.test(e.message ?? ''));
  return hit?.message;
}

/**
 * Each reader is the only member of its own consumer group, and this assigner hands that
 * member exactly the partition it reads, so one process can read many partitions of a topic
 * without their groups rebalancing each other.
 */
export function singlePartitionAssigner(topic: string, partition: number): PartitionAssigner {
  const name = 'CairnSinglePartition';
  const userData = Buffer.alloc(0);
  return () => ({
    name,
    version: 1,
    assign: async ({ members }) =>
      // Should a second member ever join, it gets nothing: a partition is never read twice.
      members.map((m, i) => ({
        memberId: m.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: i === 0 ? { [topic]: [partition] } : {}, userData }),
      })),
    protocol: ({ topics }) => ({ name, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData }) }),
  });
}

/**
 * The admin calls the log makes, on one lazily connected admin client. Each call, connect
 * included, ends within `timeoutMs` (withDeadline). After an outage the client is dropped
 * (disconnected at once, even mid-connect) and the next call connects afresh.
 */
export class KafkaAdmin {
  private admin: { client: Admin; ready: Promise<Admin> } | undefined;
  private knownCount: number | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly timeoutMs: number,
  ) {}

  /** The topic's partition count, read afresh (partitions can be added). */
  async partitionCount(): Promise<number> {
    const metadata = await this.call(`cannot read metadata of topic ${this.topic}`, (a) => a.fetchTopicMetadata({ topics: [this.topic] }));
    this.knownCount = metadata.topics.find((t) => t.name === this.topic)?.partitions.length ?? 0;
    return this.knownCount;
  }

  /** Throws NOT_FOUND unless the topic has partition `n` (metadata is re-read on a miss). */
  async checkPartition(n: number): Promise<void> {
    if (this.knownCount !== undefined && n < this.knownCount) return;
    const count = await this.partitionCount();
    if (n >= count) {
      throw new CairnError('NOT_FOUND', `topic ${this.topic} has no partition ${n} (it has ${count})`, {
        details: { topic: this.topic, partition: n, partitions: count },
      });
    }
  }

  /**
   * The first retained offset and the end (types.ts LogInfo): kafkajs's admin lists offsets
   * read_committed, so `high` is the last stable offset, the end a Cairn reader (always
   * read_committed) can reach; it equals the high watermark unless a transaction is undecided.
   */
  async watermarks(n: number): Promise<LogInfo> {
    await this.checkPartition(n);
    const offsets = await this.call(`cannot read offsets of ${this.topic}/${n}`, (a) => a.fetchTopicOffsets(this.topic));
    const p = offsets.find((o) => o.partition === n);
    if (!p) throw new CairnError('NOT_FOUND', `topic ${this.topic} has no partition ${n}`, { details: { topic: this.topic, partition: n } });
    return { start: Number(p.low), end: Number(p.high) };
  }

  async deleteBefore(n: number, offset: number): Promise<void> {
    await this.call(`cannot delete records of ${this.topic}/${n} before ${offset}`, (a) =>
      a.deleteTopicRecords({ topic: this.topic, partitions: [{ partition: n, offset: String(offset) }] }),
    );
  }

  /** Deletes consumer groups; one that is already gone counts as deleted. */
  async deleteGroups(groupIds: string[]): Promise<void> {
    if (groupIds.length === 0) return;
    await this.call(`cannot delete consumer groups ${groupIds.join(', ')}`, async (a) => {
      try {
        await a.deleteGroups(groupIds);
      } catch (err) {
        const failed = (err as { groups?: Array<{ groupId: string; error?: { type?: string } }> }).groups ?? [];
        if (failed.length === 0 || failed.some((g) => g.error && g.error.type !== 'GROUP_ID_NOT_FOUND')) throw err;
      }
    });
  }

  /** A consumer group's state and members: client id and assigned partitions of this topic. */
  async describeGroup(groupId: string): Promise<{ state: string; members: Array<{ clientId: string; partitions: number[] }> }> {
    const { groups } = await this.call(`cannot describe group ${groupId}`, (a) => a.describeGroups([groupId]));
    const g = groups[0];
    return {
      state: g?.state ?? 'Dead',
      members: (g?.members ?? []).map((m) => {
        const assignment = m.memberAssignment.length > 0 ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment) : null;
        return { clientId: m.clientId, partitions: assignment?.assignment[this.topic] ?? [] };
      }),
    };
  }

  async close(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    if (admin) await withDeadline(admin.client.disconnect(), this.timeoutMs, `disconnecting from ${this.topic}`).catch(() => undefined);
  }

  private async call<T>(what: string, fn: (admin: Admin) => Promise<T>): Promise<T> {
    try {
      return await withDeadline(
        this.client().then((admin) => fn(admin)),
        this.timeoutMs,
        what,
      );
    } catch (err) {
      const e = kafkaError(err, what);
      if (e.code === 'LOG_UNAVAILABLE') void this.close();
      throw e;
    }
  }

  private client(): Promise<Admin> {
    if (!this.admin) {
      const client = this.kafka.admin();
      const ready = client.connect().then(() => client);
      const entry = { client, ready };
      this.admin = entry;
      ready.catch(() => {
        if (this.admin === entry) this.admin = undefined;
        void client.disconnect().catch(() => undefined);
      });
    }
    return this.admin.ready;
  }
}
