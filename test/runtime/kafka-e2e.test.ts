import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import type { AppendRecord } from '../../src/log/types.js';
import { s3Env } from '../helpers/backends.js';
import { bankModel, parseDump, textKey, toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, jsonOf, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { kafkaBrokers } from '../helpers/kafka.js';
import { kafkaEnv } from '../helpers/kafka-java.js';
import { sleep, watch, writeConfig } from '../helpers/runtime-harness.js';

/**
 * Cairn on a real Kafka broker (and real MinIO), through the CLI a user would type: trim
 * gaps with deleteRecords, poison records, and a broker restarted under a running worker.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');
const KAFKA_SH = join(REPO_ROOT, 'test/services/kafka.sh');
const run = promisify(execFile);

const admins: Admin[] = [];
afterAll(async () => {
  for (const a of admins) await a.disconnect().catch(() => undefined);
});

async function createTopic(brokers: string[], partitions = 1): Promise<{ topic: string; admin: Admin; kafka: Kafka }> {
  const kafka = new Kafka({ clientId: 'cairn-e2e', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  admins.push(admin);
  const topic = `cairn-e2e-${randomBytes(4).toString('hex')}`;
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '-1' }, { name: 'retention.bytes', value: '-1' }] }],
  });
  return { topic, admin, kafka };
}

function node(cwd: string, name: string, config: Record<string, unknown>) {
  writeConfig(cwd, { ...config, stateDir: `./state-${name}`, node: name }, `${name}.json`);
  return (...args: string[]) => runCli(['--config', `${name}.json`, ...args], { cwd });
}

/**
 * How Cairn reaches the broker: plaintext, and as managed Kafka requires, TLS with SASL
 * (SCRAM-SHA-512, the password from an environment variable, the broker's certificate
 * checked against the CA test/services/kafka.sh generated), appending zstd-compressed.
 */
const listeners = [
  { name: 'plaintext', log: () => ({ brokers: kafkaBrokers() }) },
  {
    name: 'SASL_SSL with zstd appends',
    log: () => ({
      brokers: [kafkaEnv('KAFKA_SASL_SSL_BROKERS')],
      ssl: { ca: kafkaEnv('KAFKA_CA_FILE') },
      sasl: { mechanism: 'scram-sha-512', username: kafkaEnv('KAFKA_SASL_USERNAME'), passwordEnv: 'KAFKA_SASL_PASSWORD' },
      compression: 'zstd',
    }),
  },
];

describe.each(listeners)('Cairn on Kafka ($name) + MinIO', ({ log }) => {
  it('checkpoints, trims the broker log, and a fresh node bootstraps across the gap to the same state', async () => {
    const brokers = kafkaBrokers();
    const { topic, admin } = await createTopic(brokers);
    const { endpoint, bucket } = s3Env();
    const cwd = tempDir('cairn-kafka-e2e-');
    const config = {
      store: { url: `s3://${bucket}/kafka-e2e-${randomBytes(4).toString('hex')}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true },
      log: { type: 'kafka', topic, ...log() },
      snapshots: { everyRecords: 1000, retain: 2, concurrency: 8 },
    };
    const a = node(cwd, 'a', config);
    const fresh = node(cwd, 'fresh', config);
    const first = bankEvents(4000, 11);
    const second = bankEvents(1500, 12);
    writeFileSync(join(cwd, 'first.jsonl'), toJsonl(first));
    writeFileSync(join(cwd, 'second.jsonl'), toJsonl(second));

    expect(jsonOf(await a('--json', 'log', 'append', '--partition', 'p0', '--jsonl', 'first.jsonl'))).toMatchObject({ first: 0, last: 3999 });
    expect(jsonOf(await a('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end', '--checkpoint-on-exit'))).toMatchObject({ appliedLsn: 3999, recordsApplied: 4000 });

    // Trim behind the archived LSN, as the coordinator would: the broker's log start moves.
    const latest = JSON.parse((await a('--json', 'snapshots', 'list', '--partition', 'p0')).stdout).snapshots.filter((s: { retained: boolean }) => s.retained);
    const archived = Math.min(...latest.map((s: { lsn: number }) => s.lsn));
    expect(archived).toBeGreaterThan(0);
    const trimmed = await a('--json', 'log', 'trim', '--partition', 'p0', '--before', String(archived + 1));
    expect(trimmed.code, trimmed.stderr).toBe(0);
    const [offsets] = await admin.fetchTopicOffsets(topic);
    expect(Number(offsets!.low)).toBe(archived + 1);
    expect(JSON.parse((await a('--json', 'log', 'info', '--partition', 'p0')).stdout)).toMatchObject({ start: archived + 1, end: 4000 });

    expect((await a('log', 'append', '--partition', 'p0', '--jsonl', 'second.jsonl')).code).toBe(0);
    const resumed = await a('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end');
    expect(JSON.parse(resumed.stdout)).toMatchObject({ start: { source: 'local', lsn: 3999 }, appliedLsn: 5499 });

    // A fresh node needs LSN 0, the broker starts above it: it restores latest.json and tails.
    const joined = await fresh('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end');
    expect(joined.code, joined.stderr).toBe(0);
    expect(JSON.parse(joined.stdout)).toMatchObject({ start: { source: 'bootstrap' }, appliedLsn: 5499 });
    const stateA = parseDump((await a('state', 'dump', '--partition', 'p0')).stdout);
    const stateFresh = parseDump((await fresh('state', 'dump', '--partition', 'p0')).stdout);
    expect(stateFresh).toEqual(stateA);
    expect(stateA.entries).toEqual(bankModel([...first, ...second]));
    await admin.deleteTopics({ topics: [topic] });
  });
});

describe('a wrong SASL password', () => {
  it('is one clear line and exit 1 within 30 s, for a batch run and for log info, not a wait', async () => {
    const cwd = tempDir('cairn-kafka-badpass-');
    writeConfig(cwd, {
      store: { url: 'file://./store' },
      log: {
        type: 'kafka',
        topic: 'any',
        brokers: [kafkaEnv('KAFKA_SASL_SSL_BROKERS')],
        ssl: { ca: kafkaEnv('KAFKA_CA_FILE') },
        sasl: { mechanism: 'scram-sha-512', username: kafkaEnv('KAFKA_SASL_USERNAME'), passwordEnv: 'CAIRN_TEST_KAFKA_PASSWORD' },
      },
    });
    const env = { CAIRN_TEST_KAFKA_PASSWORD: 'not-the-password' };
    for (const args of [['log', 'info', '--partition', 'p0'], ['run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end']]) {
      const started = Date.now();
      const r = await runCli(args, { cwd, env });
      expect(Date.now() - started, args.join(' ')).toBeLessThan(30_000);
      expect(r.code, r.stderr).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines.at(-1)).toMatch(/^cairn: error: .*authentication failed.*\[LOG_UNAVAILABLE\]$/);
      expect(lines.filter((l) => l.startsWith('cairn: error:'))).toHaveLength(1);
    }
    // Without the variable at all, the configuration is refused before connecting: exit 2.
    const unset = await runCli(['log', 'info', '--partition', 'p0'], { cwd, env: { CAIRN_TEST_KAFKA_PASSWORD: '' } });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/log\.sasl\.passwordEnv: environment variable CAIRN_TEST_KAFKA_PASSWORD is not set/);
  });
});

describe('a large append on Kafka', () => {
  it('goes in as one transaction; --stop-at-end still stops past the marker that ends it', async () => {
    const brokers = kafkaBrokers();
    const { topic, admin } = await createTopic(brokers);
    const cwd = tempDir('cairn-kafka-txn-');
    const cli = node(cwd, 'n', { store: { url: 'file://./store' }, log: { type: 'kafka', brokers, topic } });
    // ~1.5 MB: above one produce batch, so the append is split inside a transaction.
    const events = bankEvents(3000, 41).map((e) => ({ ...e, value: { ...(e.value as object), memo: 'm'.repeat(400) } }));
    writeFileSync(join(cwd, 'big.jsonl'), toJsonl(events));
    const { first, last } = jsonOf(await cli('--json', 'log', 'append', '--partition', 'p0', '--jsonl', 'big.jsonl')) as { first: number; last: number };
    const [offsets] = await admin.fetchTopicOffsets(topic);
    expect(Number(offsets!.high), 'a commit marker follows the last record').toBeGreaterThan(last + 1);

    expect(jsonOf(await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end'))).toMatchObject({ appliedLsn: last, recordsApplied: 3000, stoppedBy: 'end-of-log' });
    expect(first).toBe(0);
    expect(parseDump((await cli('state', 'dump', '--partition', 'p0')).stdout).entries).toEqual(bankModel(events));
    await admin.deleteTopics({ topics: [topic] });
  });
});

describe('poison records on Kafka', () => {
  it("stop the partition naming the LSN by default; with onBadRecord 'skip' they are skipped and counted", async () => {
    const brokers = kafkaBrokers();
    const { topic, admin, kafka } = await createTopic(brokers);
    const producer = kafka.producer();
    await producer.connect();
    const events = bankEvents(300, 21);
    const encode = (e: AppendRecord) => ({ key: textKey(e), value: JSON.stringify(e.value) });
    // Bytes that are not JSON at offset 120, an event the processor rejects at offset 201.
    await producer.send({ topic, messages: [...events.slice(0, 120).map(encode), { key: 'x', value: Buffer.from([0xff, 0x00, 0x7b]) }] });
    await producer.send({ topic, messages: [...events.slice(120, 200).map(encode), { key: 'y', value: '{"type":"refund","amount":1}' }, ...events.slice(200).map(encode)] });
    await producer.disconnect();

    const cwd = tempDir('cairn-kafka-poison-');
    const base = { store: { url: 'file://./store' }, log: { type: 'kafka', brokers, topic }, runtime: { batchSize: 50, onBadRecord: 'stop' } };
    const stopping = node(cwd, 'stop', base);
    const stopped = await stopping('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end');
    expect(stopped.code).toBe(1);
    expect(JSON.parse(stopped.stdout)).toMatchObject({ error: { code: 'CORRUPT', details: { lsn: 120 } } });
    expect(stopped.stderr).toMatch(/LSN 120/);
    expect(parseDump((await stopping('state', 'dump', '--partition', 'p0')).stdout).lsn).toBe(99);

    const skipping = node(cwd, 'skip', { ...base, runtime: { batchSize: 50, onBadRecord: 'skip' } });
    const skipped = await skipping('--json', '--verbose', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end');
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ appliedLsn: 301, recordsApplied: 300, recordsSkipped: 2 });
    const warnings = skipped.stderr.split('\n').filter((l) => l.includes('skipped')).map((l) => JSON.parse(l) as { lsn: number; msg: string });
    expect(warnings.map((w) => [w.lsn, w.msg])).toEqual([
      [120, 'record could not be decoded; skipped'],
      [201, 'processor threw; record skipped'],
    ]);
    expect(parseDump((await skipping('state', 'dump', '--partition', 'p0')).stdout).entries).toEqual(bankModel(events));
    await admin.deleteTopics({ topics: [topic] });
  });
});

describe('a broker restarted under a running worker', () => {
  // A broker of its own: stopping the shared one would fail every other Kafka test running now.
  const PORT = '9192';
  const env = { ...process.env, KAFKA_PORT: PORT };
  const kafkaSh = (command: 'start' | 'stop') => run('bash', [KAFKA_SH, command], { env, timeout: 180_000 });
  afterAll(async () => {
    await kafkaSh('stop').catch(() => undefined);
  });

  it('waits and resumes: the final state equals the model, no record lost or applied twice', { timeout: 300_000 }, async () => {
    await kafkaSh('start');
    const brokers = [`127.0.0.1:${PORT}`];
    const { topic, kafka } = await createTopic(brokers);
    const events = bankEvents(6000, 31);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 50, maxRetryTime: 5000 } });
    await producer.connect();
    const send = (from: number, to: number) => producer.send({ topic, acks: -1, messages: events.slice(from, to).map((e) => ({ key: textKey(e), value: JSON.stringify(e.value) })) });
    await send(0, 2000);

    const cwd = tempDir('cairn-kafka-restart-');
    writeConfig(cwd, { store: { url: 'file://./store' }, log: { type: 'kafka', brokers, topic }, snapshots: { everyRecords: 1000, retain: 2, concurrency: 4 }, runtime: { batchSize: 100 } });
    const worker = watch(spawnCli(['run', '--partition', 'p0', '--processor', PROCESSOR, '--until-lsn', String(events.length - 1)], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } }));
    await worker.waitForLine(/partition state opened/, 60_000);
    await send(2000, 3000);
    await sleep(500);

    await kafkaSh('stop');
    await sleep(3000); // the worker keeps polling a dead broker meanwhile
    await kafkaSh('start');
    await send(3000, 6000);
    await producer.disconnect();

    const exit = await Promise.race([worker.exited, sleep(180_000).then(() => ({ code: 'timed out', signal: null }))]);
    if (worker.isRunning()) worker.child.kill('SIGKILL');
    expect(exit.code, worker.stderr()).toBe(0);
    expect(worker.stderr()).toMatch(/log unavailable; waiting|reconnect/i);
    const dump = parseDump((await runCli(['state', 'dump', '--partition', 'p0'], { cwd })).stdout);
    expect(dump.lsn).toBe(events.length - 1);
    // Counts per account would be off if a record were applied twice or lost.
    expect(dump.entries).toEqual(bankModel(events));
  });
});
