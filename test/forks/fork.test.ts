import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import bank from '../../examples/bank/processor.js';
import feesV2, { isPremium } from '../../examples/bank/fees-v2.js';
import { bankEvents } from '../../src/cli/demo-events.js';
import { normaliseConfig } from '../../src/core/config.js';
import { isCairnError } from '../../src/core/errors.js';
import { layout } from '../../src/snapshots/layout.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { createStore } from '../../src/store/index.js';
import { BACKENDS } from '../helpers/backends.js';
import { bankModel } from '../helpers/bank-model.js';
import { tempDir } from '../helpers/cli.js';
import { CountingStore } from '../helpers/counting-store.js';
import { expectCode } from '../helpers/fixtures.js';
import { readState } from '../helpers/runtime-harness.js';

/**
 * Forks on both stores: constant cost whatever the state size, independence of forks from
 * each other and from their parent, point-in-time forks, what-if replays and their diff,
 * pins and pruning.
 */
const opened: Cairn[] = [];
afterAll(async () => {
  for (const c of opened) await c.close().catch(() => undefined);
});

function cairnOn(backend: (typeof BACKENDS)[number], dir: string, label: string, counting = false): { cairn: Cairn; store: CountingStore | undefined } {
  // No eviction grace: a fork's pin goes as soon as no snapshot it may still be restored from
  // (retained, or evicted within the grace) references the parent; here, at once.
  const config = normaliseConfig({ store: backend.storeConfig(label), snapshots: { everyRecords: 1000, retain: 3, concurrency: 8, evictionGraceMs: 0 }, runtime: { batchSize: 250 } }, dir, 'test');
  const store = counting ? new CountingStore(createStore(config.store)) : undefined;
  const cairn = new Cairn(config, store ? { store } : {});
  opened.push(cairn);
  return { cairn, store };
}

/** Partition p0 with `n` bank events appended and a snapshot taken at `snapshotAt`. */
async function parentWithSnapshot(backend: (typeof BACKENDS)[number], label: string, n: number, seed: number, snapshotAt: number) {
  const { cairn } = cairnOn(backend, tempDir(`cairn-${label}-`), label);
  const events = bankEvents(n, seed);
  await cairn.log.append('p0', events);
  const p0 = cairn.processor('p0', bank);
  await p0.run({ untilLsn: snapshotAt, checkpointOnExit: true });
  return { cairn, events, p0 };
}

/** A state of about `mib` MiB of incompressible values, checkpointed as partition `partition`. */
async function bigSnapshot(cairn: Cairn, partition: string, mib: number): Promise<void> {
  const state = await PartitionState.open(cairn.stateDirOf(partition), { create: true, partition });
  const perBatch = 256;
  const value = 4096;
  const batches = Math.ceil((mib * 1024 * 1024) / (perBatch * value));
  for (let b = 0; b < batches; b++) {
    const writes = new Map(Array.from({ length: perBatch }, (_, i) => [`k${String(b * perBatch + i).padStart(8, '0')}`, { value: randomBytes(value / 2).toString('hex') }] as const));
    await state.commit(writes, 1_000_000 + b); // same number of digits at every size
  }
  try {
    const capture = await state.capture(join(cairn.config.stateDir, '.staging', `${partition}-big`));
    await cairn.snapshots.checkpoint(capture, { partition, node: 'test', source: `embedded:${partition}` });
    await capture.release();
  } finally {
    await state.close();
  }
}

describe.each(BACKENDS)('forks on $name', (backend) => {
  it('fork create costs the same few requests and bytes at ~10 MiB and ~100 MiB, and uploads no table', async () => {
    const costs = [];
    for (const mib of [10, 100]) {
      const dir = tempDir('cairn-fork-cost-');
      const { cairn, store } = cairnOn(backend, dir, `fork-cost-${mib}`, true);
      await bigSnapshot(cairn, 'big', mib);
      const meta = await cairn.snapshots.metadata('big');
      expect(meta.files.reduce((n, f) => n + f.size, 0)).toBeGreaterThan(mib * 0.9 * 1024 * 1024);
      store!.reset();
      const r = await cairn.forks.create('big', 'f');
      const ops = Object.keys(store!.counts).sort();
      costs.push({ requests: store!.total, reported: r.requests, ops, tableBytes: (store!.counts.uploadFile ?? 0) + (store!.counts.copy ?? 0), bytes: r.bytesWritten });
      expect(r.sharedBytes).toBe(meta.files.reduce((n, f) => n + f.size, 0));
    }
    expect(costs[0]!.requests).toBeLessThanOrEqual(6);
    expect(costs[1]!.requests).toBe(costs[0]!.requests);
    expect(costs[0]!.reported).toBe(costs[0]!.requests);
    expect(costs[1]!.ops).toEqual(costs[0]!.ops);
    expect(costs.map((c) => c.tableBytes)).toEqual([0, 0]);
    // The fork's metadata inherits the parent's file list instead of copying it: the same
    // bytes at any size (ids and timestamps have fixed widths), far below one table.
    expect(costs[1]!.bytes).toBe(costs[0]!.bytes);
    expect(costs[1]!.bytes).toBeLessThan(16 * 1024);
  });

  it('20 forks of one snapshot, mutated in parallel, each equal their own model; the parent is unchanged', async () => {
    const { cairn, events, p0 } = await parentWithSnapshot(backend, 'fork-parallel', 2000, 3, 999);
    await p0.close();
    const parentBefore = await cairn.snapshots.metadata('p0');
    const forks = Array.from({ length: 20 }, (_, i) => `f${i}`);
    await Promise.all(forks.map((f) => cairn.forks.create('p0', f)));
    // Each fork replays a different stretch of the log with its own rule.
    const plans = forks.map((f, i) => ({ fork: f, toLsn: 1000 + i * 50, rule: i % 2 === 0 ? bank : feesV2 }));
    await Promise.all(plans.map((p) => cairn.forks.replay(p.fork, p.rule, { toLsn: p.toLsn, checkpointOnExit: true })));
    for (const p of plans) {
      const state = await readState(cairn.stateDirOf(p.fork));
      expect(state.lsn).toBe(p.toLsn);
      const fee = p.rule === bank ? () => 25 : (account: string, i: number) => (i > 999 && isPremium(account) ? 0 : 25);
      expect(state.entries).toEqual(bankModel(events, p.toLsn, fee));
    }
    const parentAfter = await cairn.snapshots.metadata('p0');
    expect(parentAfter).toEqual(parentBefore);
    expect((await readState(cairn.stateDirOf('p0'))).entries).toEqual(bankModel(events, 999));
    const listed = await cairn.forks.list();
    expect(listed.filter((l) => l.status === 'ok').map((l) => l.fork).sort()).toEqual([...forks].sort());
  });

  it('a point-in-time fork between two snapshots equals a full replay to that LSN', async () => {
    const dir = tempDir('cairn-fork-pit-');
    const { cairn } = cairnOn(backend, dir, 'fork-pit');
    const events = bankEvents(3000, 9);
    await cairn.log.append('p0', events);
    const p0 = cairn.processor('p0', bank, { everyRecords: 0 });
    for (const untilLsn of [999, 1999, 2999]) await p0.run({ untilLsn, checkpointOnExit: true });
    await p0.close();
    const lsns = (await cairn.snapshots.latest('p0'))!.pointer.retained.map((e) => e.lsn).sort((a, b) => a - b);
    expect(lsns).toEqual([999, 1999, 2999]);
    const created = await cairn.forks.create('p0@lsn:1500', 'pit');
    expect(created).toMatchObject({ lsn: 999, targetLsn: 1500 });
    const r = await cairn.forks.replay('pit', bank, { toLsn: 1500 });
    expect(r).toMatchObject({ caughtUpTo: 1500, appliedLsn: 1500 });
    expect((await readState(cairn.stateDirOf('pit'))).entries).toEqual(bankModel(events, 1500));
    // The catch-up was checkpointed: a second node opening the fork starts at 1500.
    expect((await cairn.snapshots.metadata('pit')).lsn).toBe(1500);

    // Records the log no longer holds: a clear error, nothing written.
    await cairn.log.trim('p0', 1500);
    const gone = await cairn.forks.create('p0@lsn:1200', 'late').catch((e: unknown) => e);
    expect(isCairnError(gone, 'TRIM_GAP')).toBe(true);
    expect(await cairn.snapshots.latest('late')).toBeUndefined();
    const beyond = await cairn.forks.create('p0@lsn:99999', 'beyond').catch((e: unknown) => e);
    expect(isCairnError(beyond, 'BAD_INPUT')).toBe(true);
  });

  it('a point in time below every retained snapshot forks the empty state, which catches up from LSN 0', async () => {
    const dir = tempDir('cairn-fork-origin-');
    const { cairn } = cairnOn(backend, dir, 'fork-origin');
    const events = bankEvents(2000, 5);
    await cairn.log.append('p0', events);
    const p0 = cairn.processor('p0', bank, { everyRecords: 0 });
    await p0.run({ untilLsn: 1499, checkpointOnExit: true });
    await p0.close();
    // The only snapshot is at 1499: nothing at or below 700, but the log holds LSN 0 onwards.
    const created = await cairn.forks.create('p0@lsn:700', 'genesis');
    expect(created).toMatchObject({ fork: 'genesis', snapshotId: null, lsn: -1, targetLsn: 700, sharedBytes: 0 });
    expect(created.requests).toBeLessThanOrEqual(5);
    expect((await cairn.forks.list()).find((f) => f.fork === 'genesis')).toMatchObject({ latest: null, targetLsn: 700, status: 'ok' });
    const again = await cairn.forks.create('p0@lsn:700', 'genesis').catch((e: unknown) => e);
    expect(isCairnError(again, 'BAD_INPUT')).toBe(true);

    const r = await cairn.forks.replay('genesis', bank, { toLsn: 700 });
    expect(r).toMatchObject({ caughtUpTo: 700, appliedLsn: 700 });
    expect((await readState(cairn.stateDirOf('genesis'))).entries).toEqual(bankModel(events, 700));
    // Caught up once and checkpointed there, with the lineage: it is a fork like any other now.
    const meta = await cairn.snapshots.metadata('genesis');
    expect(meta).toMatchObject({ lsn: 700, fork: { log: 'p0' } });
    expect((await cairn.forks.list()).find((f) => f.fork === 'genesis')).toMatchObject({ latest: { lsn: 700 }, parent: { partition: 'p0', snapshotId: null } });
    await cairn.forks.drop('genesis');
    expect((await cairn.forks.list()).find((f) => f.fork === 'genesis')).toBeUndefined();

    // Once the log no longer holds LSN 0, the empty state is out of reach: NO_SNAPSHOT, nothing written.
    await cairn.log.trim('p0', 100);
    const gone = await cairn.forks.create('p0@lsn:700', 'late').catch((e: unknown) => e);
    expect(isCairnError(gone, 'NO_SNAPSHOT')).toBe(true);
    expect((await cairn.forks.list()).find((f) => f.fork === 'late')).toBeUndefined();
  });

  it('diff of a bank run and a fees-v2 replay reports exactly the accounts whose values differ', async () => {
    const { cairn, events, p0 } = await parentWithSnapshot(backend, 'fork-diff', 4000, 17, 1999);
    const forkPoint = (await cairn.snapshots.metadata('p0')).snapshotId;
    await p0.run({ stopAtEnd: true, checkpointOnExit: true });
    await p0.close();
    await cairn.forks.create(`p0@${forkPoint}`, 'what-if');
    await cairn.forks.replay('what-if', feesV2, { checkpointOnExit: true });

    const v1 = bankModel(events);
    const v2 = bankModel(events, events.length - 1, (account, i) => (i > 1999 && isPremium(account) ? 0 : 25));
    const expected = [...v1.keys()].filter((k) => JSON.stringify(v1.get(k)) !== JSON.stringify(v2.get(k))).sort();
    expect(expected.length).toBeGreaterThan(5);
    const seen: string[] = [];
    const d = await cairn.forks.diff('p0', 'what-if', { samples: 5, onDifference: (x) => seen.push(x.key) });
    expect(d).toMatchObject({ a: { partition: 'p0', lsn: 3999 }, b: { partition: 'what-if', lsn: 3999 }, added: 0, removed: 0, changed: expected.length });
    expect(seen.sort()).toEqual(expected);
    expect(d.unchanged).toBe(v1.size - expected.length);
    expect(d.samples).toHaveLength(5);
    for (const s of d.samples) expect(s).toEqual({ key: s.key, change: 'changed', a: v1.get(s.key), b: v2.get(s.key) });
  });

  it('pins: a fork of a fork works; the pin goes once the fork owns its files; prune never deletes what a fork needs', async () => {
    const { cairn, events, p0 } = await parentWithSnapshot(backend, 'fork-pins', 6000, 23, 999);
    const pinnedId = (await cairn.snapshots.metadata('p0')).snapshotId;
    await cairn.forks.create('p0', 'a');
    await cairn.forks.create('a', 'b'); // a fork of a fork: b's files are p0's keys, pinned on a
    expect((await cairn.snapshots.metadata('b')).files.every((f) => f.key.startsWith('p0/'))).toBe(true);

    // The parent moves on far past its retention window: the pinned snapshot stays.
    await p0.run({ stopAtEnd: true });
    await p0.close();
    const retained = (await cairn.snapshots.latest('p0'))!.pointer.retained;
    expect(retained.map((e) => e.snapshotId)).toContain(pinnedId);
    const pruned = await cairn.forks.prune('p0', 1);
    expect(pruned.kept.find((k) => k.path.includes(pinnedId))?.why).toMatch(/pinned by fork a/);
    expect(pruned.deleted.some((p) => p.includes(pinnedId))).toBe(false);
    expect((await cairn.snapshots.latest('p0'))!.pointer.retained.map((e) => e.snapshotId)).toContain(pinnedId);
    await cairn.snapshots.verify('b'); // b's files, at p0's keys, are all there

    // b replays and checkpoints until none of its retained snapshots references p0.
    for (const toLsn of [1500, 2000, 2500, 3000]) await cairn.forks.replay('b', bank, { toLsn, checkpointOnExit: true });
    const bMeta = await cairn.snapshots.metadata('b');
    expect(bMeta.files.every((f) => f.key.startsWith('b/'))).toBe(true);
    expect(await cairn.store.head(layout.pin('a', 'b')).catch((e: unknown) => e)).toSatisfy((e: unknown) => isCairnError(e, 'NOT_FOUND'));
    expect((await readState(cairn.stateDirOf('b'))).entries).toEqual(bankModel(events, 3000));

    // a still pins p0; dropping a releases it, and prune may then delete the snapshot.
    const dropped = await cairn.forks.drop('a');
    expect(dropped.releasedPins).toEqual([layout.pin('p0', 'a')]);
    const again = await cairn.forks.prune('p0', 1);
    expect(again.deleted.some((p) => p.includes(pinnedId))).toBe(true);
    expect(await cairn.snapshots.latest('a')).toBeUndefined();
    expect((await cairn.forks.list()).map((f) => f.fork)).toEqual(['b']);
  });

  it('rejects bad names, an existing fork, a non-fork drop and an unknown snapshot with clear codes', async () => {
    const dir = tempDir('cairn-fork-bad-');
    const { cairn } = cairnOn(backend, dir, 'fork-bad');
    await cairn.log.append('p0', bankEvents(100, 1));
    const p0 = cairn.processor('p0', bank);
    await p0.run({ stopAtEnd: true, checkpointOnExit: true });
    await p0.close();
    await expectCode(cairn.forks.create('p0', '../x'), 'BAD_INPUT');
    await expectCode(cairn.forks.create('p0@lsn:-1', 'x'), 'BAD_INPUT');
    await expectCode(cairn.forks.create('p0@NOTAULID', 'x'), 'BAD_INPUT');
    await expectCode(cairn.forks.create('p0@01ARZ3NDEKTSV4RRFFQ69G5FAV', 'x'), 'NOT_FOUND');
    await expectCode(cairn.forks.create('nope', 'x'), 'NO_SNAPSHOT');
    await expectCode(cairn.forks.create('p0', 'p0'), 'BAD_INPUT');
    await cairn.forks.create('p0', 'x');
    await expectCode(cairn.forks.create('p0', 'x'), 'BAD_INPUT');
    await expectCode(cairn.forks.drop('p0'), 'BAD_INPUT');
    await expectCode(cairn.forks.drop('never'), 'NOT_FOUND');
    await expectCode(cairn.forks.diff('p0@bad', 'x'), 'BAD_INPUT');
    await expectCode(cairn.forks.prune('p0', 0), 'BAD_INPUT');
  });
});
