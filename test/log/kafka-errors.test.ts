import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, KafkaJSRequestTimeoutError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { kafkaError, withDeadline } from '../../src/log/kafka-client.js';

/**
 * What reaches a Kafka log's caller when kafkajs fails: every way kafkajs reports a broker it
 * cannot talk to is LOG_UNAVAILABLE (retryable), including the plain errors it lets escape
 * (`Error('Broker not connected')` after a request timed out on a silent broker, raw
 * socket errors). No broker needed: the errors are built as kafkajs builds them.
 */

const connection = () => new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1', { broker: '127.0.0.1:1', code: 'ECONNREFUSED' });
const timeout = () => new KafkaJSRequestTimeoutError('Request ApiVersions(key: 18, version: 2) timed out', { broker: '127.0.0.1:9', clientId: 'c', correlationId: 0, createdAt: 0, sentAt: 0, pendingDuration: 0 });
/** kafkajs's typings omit the `{ cause }` its retrier passes (src/retry/index.js). */
const NonRetriable = KafkaJSNonRetriableError as unknown as new (e: Error, o?: { cause?: unknown }) => Error;
const code = (e: unknown) => ({ code: (e as CairnError).code, retryable: (e as CairnError).retryable });

describe('kafkaError', () => {
  it.each([
    ['KafkaJSConnectionError', connection],
    ['KafkaJSRequestTimeoutError', timeout],
    ['KafkaJSNumberOfRetriesExceeded < request timeout', () => new KafkaJSNumberOfRetriesExceeded(timeout(), { retryCount: 5, retryTime: 3000 })],
    // How kafkajs's retrier bails: a non-retriable wrapper with the original as its cause.
    ['KafkaJSNonRetriableError < connection error', () => new NonRetriable(connection(), { cause: connection() })],
    ['KafkaJSNonRetriableError without a cause', () => new KafkaJSNonRetriableError(connection())],
    ['plain Error("Broker not connected")', () => new Error('Broker not connected')],
    ['a socket error', () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' })],
    ['KafkaJSNonRetriableError < plain error', () => new NonRetriable(new Error('Broker not connected'), { cause: new Error('Broker not connected') })],
    ['a string', () => 'Closed connection' as unknown as Error],
  ])('%s is retryable LOG_UNAVAILABLE', (_name, make) => {
    const e = kafkaError(make(), 'cannot read offsets of t/0');
    expect(e).toBeInstanceOf(CairnError);
    expect(code(e)).toEqual({ code: 'LOG_UNAVAILABLE', retryable: true });
    expect(e.message).toMatch(/^cannot read offsets of t\/0: /);
  });

  it('keeps the broker reasons it had: missing topic, refused records, permanent refusals', () => {
    const protocol = (type: string, retriable = false) => new KafkaJSProtocolError(Object.assign(new Error(type), { type, code: 3, retriable }));
    expect(code(kafkaError(protocol('UNKNOWN_TOPIC_OR_PARTITION', true), 'x'))).toEqual({ code: 'NOT_FOUND', retryable: false });
    expect(code(kafkaError(protocol('MESSAGE_TOO_LARGE'), 'x'))).toEqual({ code: 'BAD_INPUT', retryable: false });
    expect(code(kafkaError(protocol('TOPIC_AUTHORIZATION_FAILED'), 'x'))).toEqual({ code: 'LOG_UNAVAILABLE', retryable: false });
    expect(code(kafkaError(new KafkaJSNumberOfRetriesExceeded(protocol('NOT_LEADER_FOR_PARTITION', true), { retryCount: 5, retryTime: 1 }), 'x'))).toEqual({ code: 'LOG_UNAVAILABLE', retryable: true });
  });

  it('a JavaScript error inside the client is LOG_UNAVAILABLE too, but not retried forever', () => {
    const e = kafkaError(new NonRetriable(new TypeError("Cannot read properties of undefined (reading 'leader')"), { cause: new TypeError("Cannot read properties of undefined (reading 'leader')") }), 'x');
    expect(code(e)).toEqual({ code: 'LOG_UNAVAILABLE', retryable: false });
    expect(e.message).toMatch(/TypeError/);
  });

  it('passes CairnErrors through unchanged', () => {
    const mine = new CairnError('TRIM_GAP', 'gap');
    expect(kafkaError(mine, 'x')).toBe(mine);
  });
});

describe('withDeadline', () => {
  it('fails a call that never settles with retryable LOG_UNAVAILABLE, and leaves its late failure handled', async () => {
    let rejectLate!: (e: Error) => void;
    const never = new Promise<never>((_, reject) => (rejectLate = reject));
    const started = Date.now();
    await expect(withDeadline(never, 50, 'cannot read metadata of topic t')).rejects.toMatchObject({ code: 'LOG_UNAVAILABLE', retryable: true, details: { timeoutMs: 50 } });
    expect(Date.now() - started).toBeLessThan(2000);
    rejectLate(new Error('late')); // must not become an unhandled rejection
    expect(await withDeadline(Promise.resolve(7), 50, 'x')).toBe(7);
  });
});
