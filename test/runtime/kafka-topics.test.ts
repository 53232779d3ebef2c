import { join } from 'node:path';
import kafkajs, { ConfigResourceTypes } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { normaliseConfig, type KafkaCompression, type RawConfig } from '../../src/core/config.js';
import { createLog } from '../../src/log/index.js';
import { registerKafkaCodecs } from '../../src/log/kafka-codecs.js';
import type { AppendRecord } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor, ProcessorRecord } from '../../src/runtime/processor-module.js';
import bank from '../../examples/bank/processor.js';
import { bankModel, textKey } from '../helpers/bank-model.js';
import { tempDir } from '../helpers/cli.js';
import { createTestTopic, kafkaBrokers, type TestTopic } from '../helpers/kafka.js';
import { javaProduce, type JavaRecord } from '../helpers/kafka-java.js';
import { readState, releasedAfterEach } from '../helpers/runtime-harness.js';

/**
 * Topics as teams already have them, written by Kafka's own Java producer (not Cairn, not
 * kafkajs): compressed with every codec Kafka offers, holding tombstones, plain strings,
 * null and empty keys and headers. Cairn applies them with the library, in process.
 */
const { dirs, closers } = releasedAfterEach();

async function topic(label: string): Promise<TestTopic> {
  const t = await createTestTopic(label, 1);
  closers.push(() => t.drop());
  return t;
}

/** A Cairn over `topic` with a fresh local store and state folder. */
function cairnOn(topicName: string, log: Partial<Extract<NonNullable<RawConfig['log']>, { type: 'kafka' }>> = {}): { cairn: Cairn; stateDir: string } {
  const dir = tempDir('cairn-kafka-topics-');
  dirs.push(dir);
  const config = normaliseConfig(
    { store: { url: 'file://./store' }, stateDir: './state', node: 'n', log: { type: 'kafka', brokers: kafkaBrokers(), topic: topicName, ...log }, runtime: { batchSize: 200, onBadRecord: 'stop' } },
    dir,
    'test',
  );
  const cairn = new Cairn(config);
  closers.push(() => cairn.close());
  return { cairn, stateDir: join(config.stateDir, 'p0') };
}

async function runToEnd(cairn: Cairn, processor: Processor) {
  const p = cairn.processor('p0', processor);
  try {
    return await p.run({ stopAtEnd: true });
  } finally {
    await p.close();
  }
}

const asJava = (events: AppendRecord[]): JavaRecord[] => events.map((e) => ({ key: textKey(e), value: JSON.stringify(e.value) }));

describe.each(['gzip', 'snappy', 'lz4', 'zstd'] as const)("records Kafka's Java producer compressed with %s", (codec) => {
  it('are applied in order; the state equals the model', async () => {
    const { topic: name } = await topic(`codec-${codec}`);
    const events = bankEvents(1500, codec.length + 50);
    await javaProduce({ brokers: kafkaBrokers().join(','), topic: name, partition: 0, compression: codec, records: asJava(events) });
    const { cairn, stateDir } = cairnOn(name);
    expect(await runToEnd(cairn, bank)).toMatchObject({ appliedLsn: 1499, recordsApplied: 1500 });
    const state = await readState(stateDir);
    expect(state.entries).toEqual(bankModel(events));
  });
});

describe('compression on Cairn’s own appends', () => {
  it.each(['zstd', 'lz4', 'snappy'] as const)('log.compression %s: appends read back, also through a topic that recompresses them as zstd', async (compression: KafkaCompression) => {
    const { topic: name, admin } = await topic(`append-${compression}`);
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name, configEntries: [{ name: 'compression.type', value: 'zstd' }] }] });
    const log = createLog(normaliseConfig({ log: { type: 'kafka', brokers: kafkaBrokers(), topic: name, compression } }, '/', 'test').log);
    closers.push(() => log.close());
    const events = bankEvents(700, 9);
    await log.append('p0', events);
    const got = await log.read('p0', 0, { maxRecords: 1000 });
    expect(got.map((r) => [r.key, JSON.parse(r.value!.toString('utf8'))])).toEqual(events.map((e) => [e.key, e.value]));
  });
});

describe('a topic with tombstones, strings, null and empty keys and headers', () => {
  const produced: JavaRecord[] = [
    { key: 'k1', value: 'hello' },
    { key: null, value: 'no key' },
    { key: '', value: 'empty key' },
    { key: 'k1', value: null },
    { key: 'k2', value: '' },
    { key: 'k3', value: '{"looks":"like json"}', headers: [['trace', 't-1'], ['tag', 'a'], ['tag', 'b']] },
    { key: 'ünï', value: 'ünïcødé ✓', headers: [['empty', '']] },
  ];

  it("a processor declaring valueCodec 'string' sees exactly what was produced", async () => {
    const { topic: name } = await topic('records');
    await javaProduce({ brokers: kafkaBrokers().join(','), topic: name, partition: 0, compression: 'lz4', records: produced });
    const seen: Array<ProcessorRecord<string>> = [];
    const recording: Processor<string> = { name: 'recording', valueCodec: 'string', apply: (r) => void seen.push(r) };
    const { cairn } = cairnOn(name);
    expect(await runToEnd(cairn, recording)).toMatchObject({ recordsApplied: produced.length });
    expect(
      seen.map((r) => ({ key: r.key, value: r.value, ...(r.headers.length > 0 ? { headers: r.headers.map((h) => [h.key, h.value?.toString('utf8') ?? null]) } : {}) })),
    ).toEqual(produced);
  });

  it('a tombstone deletes the account in the bank example', async () => {
    const { topic: name } = await topic('bank-tombstone');
    const events = bankEvents(400, 77);
    const closed = textKey(events[10]!);
    const after = bankEvents(100, 78).filter((e) => e.key !== closed);
    await javaProduce({ brokers: kafkaBrokers().join(','), topic: name, partition: 0, compression: 'zstd', records: [...asJava(events), { key: closed, value: null }, ...asJava(after)] });
    const { cairn, stateDir } = cairnOn(name);
    await runToEnd(cairn, bank);
    const expected = bankModel([...events, ...after]);
    expect(expected.has(`account/${closed}`)).toBe(true);
    expected.delete(`account/${closed}`);
    const state = await readState(stateDir);
    expect(state.entries).toEqual(expected);
  });
});

describe('a batch the reader cannot decompress', () => {
  it('stops the partition as CORRUPT naming the offset, within the stall bound, instead of hanging at applied -1', async () => {
    const { topic: name } = await topic('no-codec');
    await javaProduce({ brokers: kafkaBrokers().join(','), topic: name, partition: 0, compression: 'snappy', records: asJava(bankEvents(50, 5)) });
    // kafkajs as it comes, without a snappy codec (what Cairn ran on before it registered one).
    const { CompressionCodecs, CompressionTypes, KafkaJSNotImplemented } = kafkajs;
    registerKafkaCodecs(); // so that the log's own registration does not put it back
    const snappy = CompressionCodecs[CompressionTypes.Snappy];
    CompressionCodecs[CompressionTypes.Snappy] = () => {
      throw Reflect.construct(KafkaJSNotImplemented, ['Snappy compression not implemented']) as Error;
    };
    try {
      const { cairn } = cairnOn(name);
      const started = Date.now();
      await expect(runToEnd(cairn, bank)).rejects.toMatchObject({ code: 'CORRUPT', retryable: false, details: { partition: 0, lsn: 0 } });
      expect(Date.now() - started).toBeLessThan(60_000);
    } finally {
      CompressionCodecs[CompressionTypes.Snappy] = snappy;
    }
  });
});
