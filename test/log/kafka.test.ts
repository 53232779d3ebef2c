import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { isCairnError } from '../../src/core/errors.js';
import { createLog } from '../../src/log/index.js';
import { KafkaLog, type KafkaLogOptions } from '../../src/log/kafka.js';
import type { Log, LogRecord } from '../../src/log/types.js';
import { createTestTopic, kafkaBrokers, type TestTopic } from '../helpers/kafka.js';
import { runLogConformance } from '../../src/testing/log-conformance.js';

/**
 * The Kafka log against a real broker: the shared conformance suite, then what only Kafka
 * has (partition mapping, records produced by other clients, trims by deleteRecords).
 */

// Names '0' and '1', mapped through `partitions`: the suite checks that source(p) names p,
// and a Kafka source names the topic partition (`kafka:topic/0`). `pN` names are tested below.
runLogConformance('kafka', async () => {
  const t = await createTestTopic('conformance', 2);
  const log = new KafkaLog({ brokers: kafkaBrokers(), topic: t.topic, clientId: 'cairn-test', partitions: { '0': 0, '1': 1 } });
  return {
    log,
    partition: '0',
    otherPartition: '1',
    cleanup: async () => {
      await log.close();
      await t.drop();
    },
  };
});

const opened: Array<{ log: Log; topic?: TestTopic }> = [];
afterAll(async () => {
  for (const { log, topic } of opened.splice(0)) {
    await log.close();
    await topic?.drop();
  }
});

async function fresh(label: string, options: Partial<KafkaLogOptions> = {}): Promise<{ log: KafkaLog; t: TestTopic }> {
  const t = await createTestTopic(label, 2);
  const log = new KafkaLog({ brokers: kafkaBrokers(), topic: t.topic, clientId: 'cairn-test', ...options });
  opened.push({ log, topic: t });
  return { log, t };
}

async function codeOf(p: Promise<unknown>): Promise<{ code?: string; retryable?: boolean; message?: string; details?: Record<string, unknown> }> {
  return p.then(
    () => ({}),
    (e: unknown) => e as { code?: string },
  );
}

const rec = (i: number) => ({ key: `k${i}`, value: { i } });

describe('KafkaLog', () => {
  it('createLog builds a Kafka log without connecting; a broker that is not there is LOG_UNAVAILABLE', async () => {
    const log = createLog({ type: 'kafka', brokers: ['127.0.0.1:1'], topic: 'nowhere', clientId: 'c', partitions: { orders: 4 }, unavailableTimeoutMs: 60_000, compression: 'none' });
    expect(log.capabilities).toEqual({ name: 'kafka', multiProcess: true, groups: true });
    expect(log.source('p3')).toBe('kafka:nowhere/3');
    expect(log.source('orders')).toBe('kafka:nowhere/4');
    await log.close();
    await log.close();

    const down = new KafkaLog({ brokers: ['127.0.0.1:1'], topic: 'nowhere', retries: 0, connectionTimeoutMs: 300 });
    for (const op of [down.info('p0'), down.append('p0', [rec(0)]), down.read('p0', 0, { maxRecords: 1 })]) {
      expect(await codeOf(op)).toMatchObject({ code: 'LOG_UNAVAILABLE', retryable: true });
    }
    await down.close();
    expect(await codeOf(down.info('p0'))).toMatchObject({ code: 'ABORTED' });
  });

  it('maps pN to partition N and configured names to theirs; anything else is BAD_INPUT naming it', async () => {
    const { log, t } = await fresh('mapping', { partitions: { orders: 1 } });
    const a = await log.append('orders', [rec(1)]);
    const b = await log.append('p0', [rec(0)]);
    expect((await log.read('p1', a.first, { maxRecords: 10 })).map((r) => r.key)).toEqual(['k1']);
    expect((await log.read('p0', b.first, { maxRecords: 10 })).map((r) => r.key)).toEqual(['k0']);
    expect(log.source('orders')).toBe(`kafka:${t.topic}/1`);
    expect(log.source('p1')).toBe(`kafka:${t.topic}/1`);

    for (const name of ['events', 'p01', 'p', 'p99999999999']) {
      const err = await codeOf(log.append(name, [rec(0)]));
      expect(err.code, name).toBe('BAD_INPUT');
      expect(err.message).toContain(JSON.stringify(name));
    }
    expect(await codeOf(log.info('P0'))).toMatchObject({ code: 'BAD_INPUT' });
    expect(await codeOf(log.append('p7', [rec(0)]))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await codeOf(log.read('p7', 0, { maxRecords: 1 }))).toMatchObject({ code: 'NOT_FOUND' });
    const missing = new KafkaLog({ brokers: kafkaBrokers(), topic: `${t.topic}-missing` });
    opened.push({ log: missing });
    expect(await codeOf(missing.info('p0'))).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('appends all or nothing, and splits a large append into one transaction', async () => {
    const { log } = await fresh('append', { maxBatchBytes: 2048 });
    const before = await log.info('p0');
    for (const bad of [
      [rec(0), { key: 'b', value: 10n }],
      [rec(0), { key: 'c', value: () => 1 }],
      [rec(0), { key: 7 as unknown as string, value: 1 }],
      [rec(0), { key: 'd', value: 1, timestamp: 1.5 }],
    ]) {
      expect(await codeOf(log.append('p0', bad))).toMatchObject({ code: 'BAD_INPUT' });
    }
    expect(await log.info('p0')).toEqual(before);
    expect(await log.append('p0', [])).toEqual({ first: before.end, last: before.end - 1 });

    // ~40 bytes a record, 2 KiB batches: this call needs several batches.
    const many = Array.from({ length: 300 }, (_, i) => ({ key: `m${i}`, value: { i, pad: 'x'.repeat(8) }, timestamp: 1_700_000_000_000 + i }));
    const big = await log.append('p0', many);
    const after = await log.append('p0', [rec(1)]);
    expect(after.first).toBeGreaterThan(big.last);
    const got: LogRecord[] = [];
    let next = big.first;
    while (got.length < 301) {
      const batch = await log.read('p0', next, { maxRecords: 64 });
      expect(batch.length).toBeGreaterThan(0);
      got.push(...batch);
      next = batch[batch.length - 1]!.lsn + 1;
    }
    expect(got.map((r) => r.key)).toEqual([...many.map((m) => m.key), 'k1']);
    expect(got.slice(0, 300).map((r) => [JSON.parse(r.value!.toString('utf8')), r.timestamp])).toEqual(many.map((m) => [m.value, m.timestamp]));
    expect(got[0]!.lsn).toBe(big.first);
    expect(got[299]!.lsn).toBe(big.last);
    expect(got[300]!.lsn).toBe(after.first);
  });

  it('returns records other clients produced as their bytes: tombstones, null and binary keys, headers, never dropping one', async () => {
    const { log, t } = await fresh('raw');
    const producer = t.kafka.producer();
    await producer.connect();
    await producer.send({
      topic: t.topic,
      messages: [
        { partition: 0, key: 'a', value: '{"ok":1}' },
        { partition: 0, key: 'b', value: Buffer.from([0xff, 0x00, 0x7b]) },
        { partition: 0, key: 'c', value: null },
        { partition: 0, key: Buffer.from([0xc3, 0x28]), value: '' },
        { partition: 0, key: null, value: 'plain text', headers: { trace: 'abc', tag: ['x', 'y'] } },
        { partition: 0, key: '', value: '"fine"' },
      ],
    });
    await producer.disconnect();
    const got = await log.read('p0', 0, { maxRecords: 10 });
    expect(got.map((r) => [r.lsn, r.key, r.keyBytes?.toString('hex') ?? null, r.value?.toString('hex') ?? null])).toEqual([
      [0, 'a', '61', Buffer.from('{"ok":1}').toString('hex')],
      [1, 'b', '62', 'ff007b'],
      [2, 'c', '63', null],
      [3, null, 'c328', ''],
      [4, null, null, Buffer.from('plain text').toString('hex')],
      [5, '', '', Buffer.from('"fine"').toString('hex')],
    ]);
    expect(got[4]!.headers.map((h) => [h.key, h.value?.toString()])).toEqual([
      ['trace', 'abc'],
      ['tag', 'x'],
      ['tag', 'y'],
    ]);
    expect(got[0]!.headers).toEqual([]);
  });

  it('a read below the log start after deleteRecords is TRIM_GAP naming both offsets', async () => {
    const { log, t } = await fresh('trimmed');
    const { first } = await log.append('p0', Array.from({ length: 10 }, (_, i) => rec(i)));
    await t.deleteRecords(0, first + 4);
    const gap = await codeOf(log.read('p0', first, { maxRecords: 10 }));
    expect(gap).toMatchObject({ code: 'TRIM_GAP', details: { requested: first, start: first + 4 } });
    expect((await log.read('p0', first + 4, { maxRecords: 10 })).map((r) => r.key)).toEqual(['k4', 'k5', 'k6', 'k7', 'k8', 'k9']);
    expect(await log.info('p0')).toEqual({ start: first + 4, end: first + 10 });
  });

  it('a reader whose next offset is trimmed while it reads gets TRIM_GAP, not a silent jump', async () => {
    // Tiny fetches and read-ahead: the consumer stays about one batch ahead of the reader.
    const { log, t } = await fresh('trim-while-reading', { maxBytesPerPartition: 1024, readAheadBytes: 1 });
    for (let b = 0; b < 40; b++) await log.append('p0', Array.from({ length: 25 }, (_, i) => rec(b * 25 + i)));
    const cut = 600;
    let next = 0;
    const first = await log.read('p0', next, { maxRecords: 10 });
    next = first[first.length - 1]!.lsn + 1;
    await t.deleteRecords(0, cut);
    let err: { code?: string; details?: Record<string, unknown> } | undefined;
    while (!err) {
      try {
        const batch = await log.read('p0', next, { maxRecords: 10 });
        expect(batch.length).toBeGreaterThan(0);
        // Contiguous: whatever was fetched before the trim, and nothing after a jump.
        expect(batch.map((r) => r.lsn)).toEqual(batch.map((_, i) => next + i));
        next += batch.length;
      } catch (e) {
        err = e as typeof err;
      }
    }
    expect(err).toMatchObject({ code: 'TRIM_GAP', details: { requested: next, start: cut } });
    expect(next).toBeLessThan(cut);
    expect(await codeOf(log.read('p0', next, { maxRecords: 10 }))).toMatchObject({ code: 'TRIM_GAP' });
    expect((await log.read('p0', cut, { maxRecords: 1 })).map((r) => r.key)).toEqual([`k${cut}`]);
  });

  it('serves a hot read loop from its read-ahead and follows new appends', async () => {
    const { log } = await fresh('hot-loop');
    const total = 20_000;
    for (let i = 0; i < total; i += 2000) await log.append('p0', Array.from({ length: 2000 }, (_, j) => rec(i + j)));
    let next = 0;
    let seen = 0;
    while (seen < total) {
      const batch = await log.read('p0', next, { maxRecords: 1000, waitMs: 1000 });
      for (const r of batch) expect(r.lsn).toBe(next++);
      seen += batch.length;
    }
    expect(seen).toBe(total);
    const pending = log.read('p0', next, { maxRecords: 10, waitMs: 10_000 });
    await log.append('p0', [rec(-1)]);
    expect((await pending).map((r) => r.lsn)).toEqual([total]);
  });
});

describe('a broker restarted under an active reader and writer', () => {
  // A broker of its own: stopping the shared one would fail every other Kafka test running now.
  const port = process.env.CAIRN_TEST_KAFKA_RESTART_PORT ?? '9392';
  const script = join(import.meta.dirname, '../services/kafka.sh');
  const kafkaSh = (command: 'start' | 'stop') => promisify(execFile)('bash', [script, command], { env: { ...process.env, KAFKA_PORT: port }, timeout: 180_000 });
  afterAll(async () => {
    await kafkaSh('stop').catch(() => undefined);
  });

  it('waits and resumes: no record lost, none returned twice, outages are retryable LOG_UNAVAILABLE', { timeout: 120_000 }, async () => {
    await kafkaSh('start');
    const brokers = [`127.0.0.1:${port}`];
    const t = await createTestTopic('restart', 1, brokers);
    const log = new KafkaLog({ brokers, topic: t.topic, clientId: 'cairn-test', stallMs: 3000 });
    const again = new KafkaLog({ brokers, topic: t.topic, clientId: 'cairn-test' });
    try {
      const total = 20_000;
      const outages: unknown[] = [];
      const retryLater = async (err: unknown) => {
        if (!isCairnError(err, 'LOG_UNAVAILABLE') || !err.retryable) throw err;
        outages.push(err);
        await sleep(300);
      };
      let acked = 0;
      const writer = (async () => {
        while (acked < total) {
          try {
            await log.append('p0', Array.from({ length: 200 }, (_, i) => rec(acked + i)));
            acked += 200;
          } catch (err) {
            await retryLater(err);
          }
          await sleep(10);
        }
      })();
      const read: LogRecord[] = [];
      const reader = (async () => {
        let next = 0;
        // Until every acknowledged record is in: a failed append may still have been written.
        while (acked < total || read.length === 0 || read[read.length - 1]!.key !== `k${total - 1}`) {
          try {
            const batch = await log.read('p0', next, { maxRecords: 500, waitMs: 500 });
            read.push(...batch);
            if (batch.length > 0) next = batch[batch.length - 1]!.lsn + 1;
          } catch (err) {
            await retryLater(err);
          }
        }
      })();
      await sleep(1000);
      await kafkaSh('stop');
      await sleep(3000);
      await kafkaSh('start');
      await Promise.all([writer, reader]);

      expect(outages.length).toBeGreaterThan(0);
      // Exactly the log, in order: compare with what a fresh reader finds from the start.
      const all: LogRecord[] = [];
      for (let next = 0; all.length < read.length; ) {
        const batch = await again.read('p0', next, { maxRecords: 5000 });
        if (batch.length === 0) break;
        all.push(...batch);
        next = batch[batch.length - 1]!.lsn + 1;
      }
      expect(read.map((r) => r.lsn)).toEqual(all.map((r) => r.lsn));
      expect(read.map((r) => r.key)).toEqual(all.map((r) => r.key));
      // Every acknowledged append is there (a retried one may be there twice, by design).
      const keys = new Set(read.map((r) => r.key));
      expect(Array.from({ length: total }, (_, i) => `k${i}`).filter((k) => !keys.has(k))).toEqual([]);
    } finally {
      // Here, not in the file's afterAll: that runs after this broker is stopped.
      await Promise.all([log.close(), again.close()]);
      await t.drop();
    }
  });
});
