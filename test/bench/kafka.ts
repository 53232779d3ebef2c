import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import { bootstrapFigure } from './bootstrap.js';
import { emit, ensureKafka, round, tempDir, timed } from './lib.js';

/**
 * Consume + apply through Cairn vs a raw kafkajs consumer reading the same records.
 *
 * Both start from offset 0 of the same single-partition topic, both decode every value from
 * JSON (any consumer of JSON records does), and both stop at the last record. The raw
 * consumer does nothing else; Cairn also applies each record to LevelDB state and commits it
 * with its LSN. Snapshots are off: they overlap applying and are measured on their own.
 */
export async function kafkaThroughput(records: number): Promise<void> {
  const brokers = ensureKafka();
  const kafka = new Kafka({ clientId: 'cairn-bench', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `cairn-bench-${randomBytes(4).toString('hex')}`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const produced = await timed(async () => {
    for (let i = 0; i < records; i += 10_000) {
      const n = Math.min(10_000, records - i);
      await producer.send({ topic, acks: -1, messages: Array.from({ length: n }, (_, j) => ({ key: `acct-${(i + j) % 50_000}`, value: JSON.stringify({ n: i + j, memo: 'x'.repeat(32) }) })) });
    }
  });
  await producer.disconnect();
  process.stderr.write(`produced ${records} records in ${(produced.ms / 1000).toFixed(1)} s\n`);

  const raw = await timed(() => rawConsume(kafka, topic, records));
  const cairnRun = await timed(() => cairnConsume(brokers, topic, records));
  const ratio = raw.ms / cairnRun.ms;
  emit({
    figure: 'kafka_consume_apply_vs_raw_kafkajs',
    ratio: round(ratio),
    target: '>= 0.8',
    met: ratio >= 0.8,
    records,
    cairnRecordsPerSec: Math.round(records / (cairnRun.ms / 1000)),
    rawRecordsPerSec: Math.round(records / (raw.ms / 1000)),
  });
  await bootstrapFigure(brokers, topic, records, put);
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
}

async function rawConsume(kafka: Kafka, topic: string, records: number): Promise<void> {
  const consumer = kafka.consumer({ groupId: `cairn-bench-raw-${randomBytes(4).toString('hex')}`, maxBytesPerPartition: 8 * 1024 * 1024, maxBytes: 16 * 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let checksum = 0;
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) {
            checksum += (JSON.parse(m.value!.toString()) as { n: number }).n;
            if (++seen === records) resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  if (checksum !== (records * (records - 1)) / 2) throw new Error('raw consumer read the wrong records');
}

const put: Processor = { name: 'put', apply: (r, s) => s.put(r.key ?? '', r.value) };

async function cairnConsume(brokers: string[], topic: string, records: number): Promise<void> {
  const dir = tempDir('kafka-apply');
  const config = normaliseConfig({ store: { url: 'file://./store' }, log: { type: 'kafka', brokers, topic }, stateDir: './state' }, dir, 'bench');
  const cairn = new Cairn(config, { logger: silentLogger });
  const processor = cairn.processor('p0', put, { batchSize: 1000, everyRecords: 0 });
  const summary = await processor.run({ untilLsn: records - 1 });
  await processor.close();
  await cairn.close();
  rmSync(dir, { recursive: true, force: true });
  if (summary.recordsApplied !== records) throw new Error(`cairn applied ${summary.recordsApplied} of ${records}`);
}
