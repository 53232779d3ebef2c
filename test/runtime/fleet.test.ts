import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import type { AppendRecord } from '../../src/log/types.js';
import { s3Env } from '../helpers/backends.js';
import { bankModel, parseDump, textKey } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { createTestTopic, kafkaBrokers, type TestTopic } from '../helpers/kafka.js';
import { sleep, watch, writeConfig, type Watched } from '../helpers/runtime-harness.js';

/**
 * A fleet: `cairn run --group` workers sharing a 6-partition topic through Kafka's group
 * protocol, state in MinIO. Each partition is applied by one worker at a time; a worker
 * killed with -9 loses its partitions to the others; group offsets show applied LSN + 1;
 * and whatever moved where, a fresh node per partition bootstraps to the model's state.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');
const PARTITIONS = 6;
const SESSION_TIMEOUT_MS = 8_000;

const workers: Watched[] = [];
const topics: TestTopic[] = [];
afterAll(async () => {
  for (const w of workers) if (w.isRunning()) w.child.kill('SIGKILL');
  for (const t of topics) await t.drop();
});

interface LogLine {
  time: number;
  msg: string;
  partition?: string;
  ended?: string;
}

function lines(w: Watched): LogLine[] {
  return w
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Per partition, the [start, end] intervals a worker ran it (end: Infinity while running). */
function intervals(w: Watched): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (const l of lines(w)) {
    if (!l.partition) continue;
    const list = out.get(l.partition) ?? [];
    if (l.msg === 'partition assigned; running') list.push([l.time, Infinity]);
    if (l.msg === 'partition handed back' && list.length > 0) list[list.length - 1]![1] = l.time;
    out.set(l.partition, list);
  }
  return out;
}

function running(w: Watched): string[] {
  return [...intervals(w)].filter(([, list]) => list.at(-1)?.[1] === Infinity).map(([p]) => p);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
  return Date.now() - started;
}

describe('a fleet of group workers', () => {
  it('balances six partitions over three workers, fails over a killed one, commits offsets, and ends at the model', { timeout: 420_000 }, async () => {
    const t = await createTestTopic('fleet', PARTITIONS);
    topics.push(t);
    const group = `cairn-fleet-${randomBytes(3).toString('hex')}`;
    const { endpoint, bucket } = s3Env();
    const cwd = tempDir('cairn-fleet-');
    const config = {
      store: { url: `s3://${bucket}/fleet-${randomBytes(4).toString('hex')}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true },
      log: { type: 'kafka', brokers: kafkaBrokers(), topic: t.topic },
      snapshots: { everyRecords: 400, retain: 2, concurrency: 4 },
      runtime: { batchSize: 100 },
      fleet: { sessionTimeoutMs: SESSION_TIMEOUT_MS, commitIntervalMs: 500, handoffTimeoutMs: 20_000 },
    };
    const events = new Map<string, AppendRecord[]>();
    const producer = t.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const append = async (seed: number, count: number) => {
      for (let n = 0; n < PARTITIONS; n++) {
        const batch = bankEvents(count, seed * 10 + n, 40);
        events.set(`p${n}`, [...(events.get(`p${n}`) ?? []), ...batch]);
        await producer.send({ topic: t.topic, acks: -1, messages: batch.map((e) => ({ partition: n, key: textKey(e), value: JSON.stringify(e.value) })) });
      }
    };
    const committedAtEnd = async () => {
      const [offsets] = await t.admin.fetchOffsets({ groupId: group, topics: [t.topic] });
      const ends = await t.admin.fetchTopicOffsets(t.topic);
      return ends.every((e) => offsets!.partitions.find((p) => p.partition === e.partition)?.offset === e.high);
    };
    const start = (name: string) => {
      writeConfig(cwd, { ...config, stateDir: `./state-${name}`, node: name }, `${name}.json`);
      const w = watch(spawnCli(['--config', `${name}.json`, 'run', '--group', group, '--processor', PROCESSOR], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } }));
      workers.push(w);
      return w;
    };

    await append(1, 600);
    const [a, b, c] = [start('w1'), start('w2'), start('w3')];
    await until('all six partitions running, two per worker', () => [a, b, c].every((w) => running(w).length === 2), 90_000);
    await until('group offsets at the end of every partition', committedAtEnd, 120_000);

    // kill -9 one worker: its two partitions move to the others within the session timeout (plus a bootstrap).
    const lost = running(a);
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await a.exited;
    const failover = await until('the killed worker’s partitions running elsewhere', () => lost.every((p) => running(b).includes(p) || running(c).includes(p)), SESSION_TIMEOUT_MS + 60_000);
    expect(failover).toBeLessThan(SESSION_TIMEOUT_MS + 45_000);

    await append(2, 300);
    await until('group offsets at the end again', committedAtEnd, 120_000);
    for (const w of [b, c]) w.child.kill('SIGTERM');
    for (const w of [b, c]) expect((await w.exited).code, w.stderr()).toBe(0);
    await producer.disconnect();

    // Reader groups left on the broker: only the killed worker's (it had no chance to delete
    // them; the broker would expire them). Deleted here so the suite's check stays strict.
    const { groups } = await t.admin.listGroups();
    const left = groups.map((g) => g.groupId).filter((id) => id.startsWith(`cairn-reader-${t.topic}-`));
    expect(left.map((id) => `p${/-(\d+)-[0-9a-f]{12}$/.exec(id)![1]}`).every((p) => lost.includes(p)), left.join(', ')).toBe(true);
    // Their member is dropped after the readers' 10 s session timeout; until then the group is not empty.
    if (left.length > 0) await until('the killed worker’s reader groups empty and deleted', () => t.admin.deleteGroups(left).then(() => true, () => false), 60_000);

    // One worker at a time per partition: no two run intervals overlap (the killed worker's end when it died).
    for (let n = 0; n < PARTITIONS; n++) {
      const all = [a, b, c].flatMap((w) => (intervals(w).get(`p${n}`) ?? []).map(([s, e]) => [s, e === Infinity ? killedAt : e] as [number, number])).sort((x, y) => x[0] - y[0]);
      const story = () => [a, b, c].map((w, i) => `w${i + 1}: ` + lines(w).filter((l) => l.partition === `p${n}` || l.msg === 'group rebalanced').map((l) => JSON.stringify(l)).join('\n')).join('\n');
      for (let i = 1; i < all.length; i++) expect(all[i]![0], `p${n} ran on two workers at once:\n${story()}`).toBeGreaterThanOrEqual(all[i - 1]![1]);
    }

    // Nothing lost, nothing applied twice: a fresh node per partition bootstraps from latest.json and replays the tail.
    for (let n = 0; n < PARTITIONS; n++) {
      const p = `p${n}`;
      writeConfig(cwd, { ...config, stateDir: `./fresh-${p}`, node: `fresh-${p}` }, `fresh-${p}.json`);
      const r = await runCli(['--config', `fresh-${p}.json`, '--json', 'run', '--partition', p, '--processor', PROCESSOR, '--stop-at-end'], { cwd });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ start: { source: 'bootstrap' } });
      const dump = parseDump((await runCli(['--config', `fresh-${p}.json`, 'state', 'dump', '--partition', p], { cwd })).stdout);
      expect(dump.entries, p).toEqual(bankModel(events.get(p)!));
    }
  });
});
