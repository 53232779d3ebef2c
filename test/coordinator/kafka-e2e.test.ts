import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import type { AppendRecord } from '../../src/log/types.js';
import { s3Env } from '../helpers/backends.js';
import { bankModel, parseDump, toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { startCoordinator, until, type CoordinatorProcess } from '../helpers/coordinator.js';
import { createTestTopic, kafkaBrokers, type TestTopic } from '../helpers/kafka.js';
import { sleep, watch, writeConfig, type Watched } from '../helpers/runtime-harness.js';

/**
 * The coordinator doing its job on real Kafka and real MinIO: two workers process one
 * partition and report; the coordinator trims the broker's log by itself behind their
 * snapshots; a third, fresh worker joins after the trim and bootstraps from latest.json.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

interface Status {
  log: { start: number; end: number } | null;
  archivedLsn: number | null;
  trimPoint: number | null;
  replicas: Array<{ node: string; appliedLsn: number; live: boolean }>;
  lastTrim: { mode: string; before: number; delegated: boolean } | null;
}


describe('coordinator on Kafka + MinIO', () => {
  it('trims behind the snapshots of two workers by itself; a third, fresh worker bootstraps after the trim', async () => {
    const brokers = kafkaBrokers();
    const topic: TestTopic = await createTestTopic('coordinator-e2e', 1);
    cleanups.push(() => topic.drop());
    const { endpoint, bucket } = s3Env();
    const cwd = tempDir('cairn-coord-kafka-');
    const base = {
      store: { url: `s3://${bucket}/coord-e2e-${randomBytes(4).toString('hex')}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true },
      log: { type: 'kafka', brokers, topic: topic.topic },
      snapshots: { everyRecords: 400, retain: 2, concurrency: 8 },
    };
    writeConfig(cwd, base, 'coordinator.json');
    const coordinator: CoordinatorProcess = await startCoordinator(cwd, { globals: ['--config', 'coordinator.json'], flags: ['--trim-interval', '1s', '--replica-ttl', '20s'] });
    cleanups.push(() => coordinator.stop());
    const withCoordinator = { ...base, coordinator: { url: coordinator.url, reportIntervalMs: 300 } };
    for (const name of ['a', 'b', 'fresh']) writeConfig(cwd, { ...withCoordinator, stateDir: `./state-${name}`, node: name }, `${name}.json`);
    const cli = (name: string, ...args: string[]) => runCli(['--config', `${name}.json`, ...args], { cwd });

    const workers: Watched[] = ['a', 'b'].map((name) =>
      watch(spawnCli(['--config', `${name}.json`, '--json', 'run', '--partition', 'p0', '--processor', PROCESSOR], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } })),
    );
    for (const w of workers) cleanups.push(async () => w.isRunning() && w.child.kill('SIGKILL'));

    const all: AppendRecord[] = [];
    const append = async (events: AppendRecord[], i: number) => {
      writeFileSync(join(cwd, `batch-${i}.jsonl`), toJsonl(events));
      const r = await cli('a', 'log', 'append', '--partition', 'p0', '--jsonl', `batch-${i}.jsonl`);
      expect(r.code, r.stderr).toBe(0);
      all.push(...events);
    };
    for (let i = 0; i < 5; i++) {
      await append(bankEvents(1000, 100 + i), i);
      await sleep(500);
    }

    // No one calls trim: the coordinator's loop does, once both workers' snapshots are archived.
    const trimmed = await until('an automatic trim', async () => {
      const s = await coordinator.get<Status>('/v1/partitions/p0');
      return s.lastTrim?.mode === 'automatic' && s.log!.start > 0 && s.replicas.length === 2 ? s : undefined;
    });
    expect(trimmed.lastTrim).toMatchObject({ delegated: false });
    expect(trimmed.archivedLsn).not.toBeNull();
    expect(trimmed.trimPoint!).toBeLessThanOrEqual(trimmed.archivedLsn! + 1);
    expect(trimmed.replicas.map((r) => r.node).sort()).toEqual(['a', 'b']);
    const [offsets] = await topic.admin.fetchTopicOffsets(topic.topic);
    expect(Number(offsets!.low)).toBeGreaterThan(0);
    expect(Number(offsets!.low)).toBeLessThanOrEqual(trimmed.archivedLsn! + 1);

    // A worker joins after the trim: LSN 0 is gone from the broker, so it must bootstrap.
    await append(bankEvents(500, 200), 5);
    const joined = await cli('fresh', '--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end');
    expect(joined.code, joined.stderr).toBe(0);
    const summary = JSON.parse(joined.stdout);
    expect(summary).toMatchObject({ start: { source: 'bootstrap' }, appliedLsn: all.length - 1 });
    expect(summary.start.lsn).toBeGreaterThan(0);
    expect(parseDump((await cli('fresh', 'state', 'dump', '--partition', 'p0')).stdout).entries).toEqual(bankModel(all));

    // The two long-running workers caught up too and stop cleanly.
    await until('both workers at the end', async () => {
      const s = await coordinator.get<Status>('/v1/partitions/p0');
      return s.replicas.filter((r) => r.node !== 'fresh').every((r) => r.appliedLsn === all.length - 1) ? true : undefined;
    });
    for (const w of workers) w.child.kill('SIGTERM');
    for (const w of workers) expect((await w.exited).code, w.stderr().slice(-2000)).toBe(0);
    for (const name of ['a', 'b']) expect(parseDump((await cli(name, 'state', 'dump', '--partition', 'p0')).stdout).entries).toEqual(bankModel(all));

    const metrics = await (await fetch(`${coordinator.url}/metrics`)).text();
    expect(metrics).toMatch(/cairn_coordinator_trims_total\{partition="p0",mode="automatic"\} [1-9]/);
    expect(metrics).toMatch(/cairn_coordinator_applied_lsn\{partition="p0",node="a"\} \d+/);
    expect(await coordinator.stop()).toBe(0);
  });
});
