import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import { MiB, emit, ensureKafka, ensureMinio, round, tempDir, timed } from './lib.js';

/**
 * Handoff in a fleet against replay: how long a partition is without a worker when it moves
 * (worker A is stopped, worker B of the same group takes the partition over: A publishes its
 * last snapshot, B restores it and applies the next record), against a fresh worker that
 * has no snapshot and replays the partition's whole log to the same point. Same topic, same
 * records, same machine; the state is `stateMib` of 1 KiB values under distinct keys.
 */
const VALUE_BYTES = 1024;

const put: Processor<Buffer, Buffer> = { name: 'put', valueCodec: 'bytes', apply: (r, s) => s.put(r.key ?? '', r.value ?? Buffer.alloc(0)) };

export async function fleetFigures(stateMib: number): Promise<void> {
  const brokers = ensureKafka();
  const { endpoint, bucket } = ensureMinio();
  const kafka = new Kafka({ clientId: 'cairn-bench', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `cairn-bench-fleet-${randomBytes(4).toString('hex')}`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '-1' }] }] });
  const records = Math.ceil((stateMib * MiB) / VALUE_BYTES);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const send = async (from: number, count: number) => {
    for (let i = from; i < from + count; i += 500) {
      const n = Math.min(500, from + count - i);
      await producer.send({ topic, acks: -1, compression: 0, messages: Array.from({ length: n }, (_, j) => ({ key: `k${String(i + j).padStart(10, '0')}`, value: randomBytes(VALUE_BYTES) })) });
    }
  };
  await send(0, records);
  process.stderr.write(`fleet: produced ${records} records (${stateMib} MiB of values)\n`);

  const dir = tempDir('fleet');
  const prefix = `bench-fleet-${randomBytes(4).toString('hex')}`;
  const cairnOf = (node: string, storePrefix = prefix) =>
    new Cairn(
      normaliseConfig(
        {
          store: { url: `s3://${bucket}/${storePrefix}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true },
          log: { type: 'kafka', brokers, topic },
          stateDir: `./state-${node}`,
          node,
          snapshots: { everyRecords: 0, retain: 2, concurrency: 32 },
          fleet: { sessionTimeoutMs: 10_000, commitIntervalMs: 500, handoffTimeoutMs: 120_000 },
        },
        dir,
        'bench',
      ),
      { logger: silentLogger },
    );
  const group = `cairn-bench-${randomBytes(3).toString('hex')}`;
  const waitFor = async (check: () => boolean) => {
    while (!check()) await new Promise((r) => setTimeout(r, 20));
  };

  // Worker A applies everything; worker B joins and waits (one partition: A keeps it).
  const a = cairnOf('a');
  const fleetA = a.fleet(group, put, { batchSize: 1000 });
  const stopA = new AbortController();
  const runningA = fleetA.run(stopA.signal);
  await waitFor(() => (fleetA.partitions().get('p0')?.appliedLsn ?? -1) >= records - 1);
  // As a running worker would have (snapshots.everyRecords): a recent snapshot, so the one
  // taken on revoke carries only what changed since.
  await fleetA.partitions().get('p0')!.checkpoint();
  const b = cairnOf('b');
  const fleetB = b.fleet(group, put, { batchSize: 1000 });
  const stopB = new AbortController();
  const runningB = fleetB.run(stopB.signal);
  await new Promise((r) => setTimeout(r, 3000)); // B is a member of the group

  // The handoff: A stops (snapshot on revoke, release, leave); B restores and applies the next record.
  const handoff = await timed(async () => {
    stopA.abort();
    await send(records, 1);
    await waitFor(() => (fleetB.partitions().get('p0')?.appliedLsn ?? -1) >= records);
  });
  await runningA;
  stopB.abort();
  await runningB;
  await a.close();
  await b.close();

  // The baseline: a fresh worker with no snapshot replays the whole log to the same record.
  const c = cairnOf('c', `${prefix}-empty`);
  const runner = c.processor('p0', put, { batchSize: 1000, everyRecords: 0 });
  const replay = await timed(() => runner.run({ untilLsn: records }));
  await runner.close();
  await c.close();

  const ratio = replay.ms / handoff.ms;
  emit({ figure: 'fleet_handoff_vs_replay', ratio: round(ratio), target: '> 1 (higher is better)', met: ratio > 1, stateMib, records, handoffMs: Math.round(handoff.ms), replayMs: Math.round(replay.ms) });
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  rmSync(dir, { recursive: true, force: true });
}
