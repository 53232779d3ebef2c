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
  endpoint?: string;
}

/** The worker's HTTP endpoint, from its log. */
function endpointOf(w: Watched): string {
  const line = lines(w).find((l) => l.endpoint !== undefined);
  if (!line) throw new Error(`no endpoint logged:\n${w.stderr()}`);
  return line.endpoint!;
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

interface Rig {
  t: TestTopic;
  group: string;
  cwd: string;
  config: Record<string, unknown>;
  events: Map<string, AppendRecord[]>;
  append(seed: number, count: number): Promise<void>;
  committed(): Promise<Map<number, string>>;
  committedAtEnd(): Promise<boolean>;
  start(name: string): Watched;
  freshNodesEqualTheModel(): Promise<void>;
  close(): Promise<void>;
}

async function rig(label: string, partitions: number): Promise<Rig> {
  const t = await createTestTopic(label, partitions);
  topics.push(t);
  const group = `cairn-${label}-${randomBytes(3).toString('hex')}`;
  const { endpoint, bucket } = s3Env();
  const cwd = tempDir(`cairn-${label}-`);
  const config = {
    store: { url: `s3://${bucket}/${label}-${randomBytes(4).toString('hex')}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true },
    log: { type: 'kafka', brokers: kafkaBrokers(), topic: t.topic },
    snapshots: { everyRecords: 400, retain: 2, concurrency: 4 },
    runtime: { batchSize: 100 },
    fleet: { sessionTimeoutMs: SESSION_TIMEOUT_MS, commitIntervalMs: 500, handoffTimeoutMs: 20_000 },
  };
  const events = new Map<string, AppendRecord[]>();
  const producer = t.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const committed = async () => {
    const [offsets] = await t.admin.fetchOffsets({ groupId: group, topics: [t.topic] });
    return new Map(offsets!.partitions.map((p) => [p.partition, p.offset]));
  };
  return {
    t,
    group,
    cwd,
    config,
    events,
    committed,
    append: async (seed, count) => {
      for (let n = 0; n < partitions; n++) {
        const batch = bankEvents(count, seed * 10 + n, 40);
        events.set(`p${n}`, [...(events.get(`p${n}`) ?? []), ...batch]);
        await producer.send({ topic: t.topic, acks: -1, messages: batch.map((e) => ({ partition: n, key: textKey(e), value: JSON.stringify(e.value) })) });
      }
    },
    committedAtEnd: async () => {
      const [offsets, ends] = await Promise.all([committed(), t.admin.fetchTopicOffsets(t.topic)]);
      return ends.every((e) => offsets.get(e.partition) === e.high);
    },
    start: (name) => {
      writeConfig(cwd, { ...config, stateDir: `./state-${name}`, node: name }, `${name}.json`);
      const w = watch(spawnCli(['--config', `${name}.json`, 'run', '--group', group, '--processor', PROCESSOR, '--metrics-port', '0'], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } }));
      workers.push(w);
      return w;
    },
    // Nothing lost, nothing applied twice: a fresh node per partition bootstraps from latest.json and replays the tail.
    freshNodesEqualTheModel: async () => {
      for (let n = 0; n < partitions; n++) {
        const p = `p${n}`;
        writeConfig(cwd, { ...config, stateDir: `./fresh-${p}`, node: `fresh-${p}` }, `fresh-${p}.json`);
        const r = await runCli(['--config', `fresh-${p}.json`, '--json', 'run', '--partition', p, '--processor', PROCESSOR, '--stop-at-end'], { cwd });
        expect(r.code, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ start: { source: 'bootstrap' } });
        const dump = parseDump((await runCli(['--config', `fresh-${p}.json`, 'state', 'dump', '--partition', p], { cwd })).stdout);
        expect(dump.entries, p).toEqual(bankModel(events.get(p)!));
      }
    },
    close: () => producer.disconnect(),
  };
}

/** No two workers' run intervals of one partition overlap (`until`: the end of a worker still running or killed). */
function expectOneWorkerAtATime(all: Watched[], partitions: number, ends: Map<Watched, number> = new Map()): void {
  for (let n = 0; n < partitions; n++) {
    const spans = all.flatMap((w) => (intervals(w).get(`p${n}`) ?? []).map(([s, e]) => [s, e === Infinity ? (ends.get(w) ?? Date.now()) : e] as [number, number])).sort((x, y) => x[0] - y[0]);
    const story = () => all.map((w, i) => `worker ${i + 1}: ` + lines(w).filter((l) => l.partition === `p${n}` || l.msg === 'group rebalanced').map((l) => JSON.stringify(l)).join('\n')).join('\n');
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0], `p${n} ran on two workers at once:\n${story()}`).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  }
}

/** Reader groups a killed (or paused) worker could not delete: removed once their member timed out, so the suite's check stays strict. */
async function deleteReaderGroupsOf(t: TestTopic, partitions: string[]): Promise<void> {
  const { groups } = await t.admin.listGroups();
  const left = groups.map((g) => g.groupId).filter((id) => id.startsWith(`cairn-reader-${t.topic}-`));
  expect(left.map((id) => `p${/-(\d+)-[0-9a-f]{12}$/.exec(id)![1]}`).every((p) => partitions.includes(p)), left.join(', ')).toBe(true);
  // Their member is dropped after the readers' 10 s session timeout; until then the group is not empty.
  if (left.length > 0) await until('the reader groups of a stopped worker deleted', () => t.admin.deleteGroups(left).then(() => true, () => false), 60_000);
}

describe('a fleet of group workers', () => {
  it('balances six partitions over three workers, fails over a killed one, rebalances onto a fourth, commits offsets, answers live queries, and ends at the model', { timeout: 420_000 }, async () => {
    const r = await rig('fleet', PARTITIONS);
    await r.append(1, 600);
    const [a, b, c] = [r.start('w1'), r.start('w2'), r.start('w3')];
    await until('all six partitions running, two per worker', () => [a, b, c].every((w) => running(w).length === 2), 90_000);
    await until('group offsets at the end of every partition', r.committedAtEnd, 120_000);

    // kill -9 one worker: its two partitions move to the others within the session timeout (plus a bootstrap).
    const lost = running(a);
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await a.exited;
    const failover = await until('the killed worker’s partitions running elsewhere', () => lost.every((p) => running(b).includes(p) || running(c).includes(p)), SESSION_TIMEOUT_MS + 60_000);
    expect(failover).toBeLessThan(SESSION_TIMEOUT_MS + 45_000);

    // A fourth worker (the third live one) joins: partitions move to it, each only after its
    // last owner published a snapshot and released it (checkpoint on revoke).
    const d = r.start('w4');
    await until('the fourth worker running partitions', () => running(d).length > 0, 90_000);
    const takeovers = lines(d).filter((l) => l.msg === 'partition assigned; running') as Array<LogLine & { handoff: string }>;
    expect(takeovers.every((l) => l.handoff === 'released'), JSON.stringify(takeovers)).toBe(true);
    const revoked = [b, c].flatMap((w) => lines(w).filter((l) => l.msg === 'partition handed back' && l.ended === 'revoked'));
    expect(revoked.length).toBeGreaterThanOrEqual(takeovers.length);

    await r.append(2, 300);
    await until('group offsets at the end again', r.committedAtEnd, 120_000);

    // Live queries: a worker answers for the partitions it runs, from its live state, and
    // says so for one it does not; `cairn state get --worker` reads through it.
    const [mine] = running(b);
    const [theirs] = running(c);
    const account = `account/${textKey(r.events.get(mine!)!.at(-1)!)}`;
    const live = await runCli(['--config', 'w2.json', '--json', 'state', 'get', '--partition', mine!, account, '--worker', endpointOf(b)], { cwd: r.cwd });
    expect(live.code, live.stderr).toBe(0);
    const answer = JSON.parse(live.stdout) as { value: unknown; lsn: number };
    expect(answer.lsn).toBe(r.events.get(mine!)!.length - 1);
    const elsewhere = await fetch(`${endpointOf(b)}/v1/partitions/${theirs}/state/${encodeURIComponent(account)}`);
    expect(elsewhere.status).toBe(404);
    expect(((await elsewhere.json()) as { error: { message: string } }).error.message).toMatch(new RegExp(`${theirs} is not running on this worker \\(w2\\)`));
    const range = (await (await fetch(`${endpointOf(b)}/v1/partitions/${mine}/state?gte=account/&limit=5`)).json()) as { entries: unknown[]; more: boolean };
    expect(range.entries).toHaveLength(5);
    expect(range.more).toBe(true);
    for (const path of ['/healthz', '/readyz']) expect((await fetch(`${endpointOf(b)}${path}`)).status, path).toBe(200);
    const metrics = await (await fetch(`${endpointOf(b)}/metrics`)).text();
    for (const p of running(b)) expect(metrics).toMatch(new RegExp(`cairn_partition_lag\\{partition="${p}"\\} 0\\n`));
    expect(metrics).toMatch(/cairn_partition_ownership_changes_total\{change="gained"\} [1-9]/);

    for (const w of [b, c, d]) w.child.kill('SIGTERM');
    for (const w of [b, c, d]) expect((await w.exited).code, w.stderr()).toBe(0);
    await r.close();
    await deleteReaderGroupsOf(r.t, lost);
    // The value the live query gave is the stopped state's.
    const stopped = parseDump((await runCli(['--config', 'w2.json', 'state', 'dump', '--partition', mine!], { cwd: r.cwd })).stdout);
    expect(stopped.entries.get(account)).toEqual(answer.value);
    expectOneWorkerAtATime([a, b, c, d], PARTITIONS, new Map([[a, killedAt]]));
    await r.freshNodesEqualTheModel();
  });

  it('a worker paused past the session timeout publishes and commits nothing for what it lost; a joining worker takes partitions with checkpoint-on-revoke', { timeout: 420_000 }, async () => {
    const r = await rig('fleet-pause', 4);
    await r.append(3, 500);
    const [a, b] = [r.start('w1'), r.start('w2')];
    await until('two partitions per worker', () => [a, b].every((w) => running(w).length === 2), 90_000);
    await until('group offsets at the end', r.committedAtEnd, 120_000);

    const lost = running(a);
    const pausedAt = Date.now();
    a.child.kill('SIGSTOP');
    await until('the paused worker’s partitions running on the other', () => running(b).length === 4, SESSION_TIMEOUT_MS + 60_000);
    await r.append(4, 500);
    await until('group offsets at the end, committed by the other worker', r.committedAtEnd, 120_000);
    const before = await r.committed();

    // Resumed, the paused worker still has records it has not applied (and snapshots due):
    // whatever it tries for the partitions it lost must change neither pointer nor offsets.
    a.child.kill('SIGCONT');
    await until('the resumed worker to notice it lost its partitions', () => lines(a).some((l) => l.time > pausedAt && (l.msg === 'partition handed back' || l.msg.includes('fenced'))), 60_000);
    await sleep(3000);
    expect(await r.committed()).toEqual(before);
    for (const p of lost) {
      const shown = await runCli(['--config', 'w2.json', '--json', 'snapshots', 'show', '--partition', p], { cwd: r.cwd });
      const meta = JSON.parse(shown.stdout) as { node: string; createdAt: string };
      expect(meta.node === 'w1' && Date.parse(meta.createdAt) > pausedAt, `${p}: latest published by the paused worker after it lost it`).toBe(false);
    }

    // A third worker joins: partitions move, each handed over with a snapshot first.
    const c = r.start('w3');
    await until('the joiner running partitions', () => running(c).length > 0, 90_000);
    const takeovers = lines(c).filter((l) => l.msg === 'partition assigned; running') as Array<LogLine & { handoff: string }>;
    expect(takeovers.every((l) => l.handoff === 'released' || l.handoff === 'free'), JSON.stringify(takeovers)).toBe(true);
    await r.append(5, 200);
    await until('group offsets at the end with three workers', r.committedAtEnd, 120_000);
    for (const w of [a, b, c]) w.child.kill('SIGTERM');
    for (const w of [a, b, c]) expect((await w.exited).code, w.stderr()).toBe(0);
    await r.close();
    await deleteReaderGroupsOf(r.t, lost);
    expectOneWorkerAtATime([b, c], 4);
    await r.freshNodesEqualTheModel();
  });
});
