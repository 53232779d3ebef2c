import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import type { CairnConfig, RawConfig } from '../../src/core/config.js';
import { CairnError } from '../../src/core/errors.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import type { AppendRecord } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { SnapshotRepository } from '../../src/snapshots/repository.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import type { Capture } from '../../src/state/types.js';
import { readLatest } from '../../src/snapshots/pointer.js';
import { createStore } from '../../src/store/index.js';
import bank from '../../examples/bank/processor.js';
import { bankModel } from '../helpers/bank-model.js';
import { tempDir } from '../helpers/cli.js';
import { CountingStore } from '../helpers/counting-store.js';
import { FaultyStore } from '../helpers/faulty-store.js';
import { embeddedConfig, readState, sleep } from '../helpers/runtime-harness.js';

/**
 * The partition processor as a library (src/runtime): where its starting state comes from,
 * what a failing processor leaves behind, what `state` shows a processor within a batch,
 * when snapshots are taken, and where --until-lsn stops.
 */

interface Rig {
  dir: string;
  config: CairnConfig;
  log: EmbeddedLog;
  /** A Cairn over the shared log and a fresh counting wrapper around the real fs store. */
  cairn(options?: { transferDelayMs?: number; faulty?: boolean }): { cairn: Cairn; store: CountingStore; faulty?: FaultyStore };
  state(): Promise<{ lsn: number; entries: Map<string, unknown> }>;
}

const open: Array<{ close(): Promise<void> }> = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function rig(overrides: Partial<RawConfig> = {}): Rig {
  const dir = tempDir('cairn-processor-');
  dirs.push(dir);
  const { config } = embeddedConfig(dir, { node: 'test-node', runtime: { batchSize: 10, onBadRecord: 'stop' }, ...overrides });
  // One embedded log for every Cairn of the test: it is single-process, and so is the test.
  const log = new EmbeddedLog({ dir: join(dir, 'log') });
  open.push(log);
  return {
    dir,
    config,
    log,
    cairn(options = {}) {
      const inner = createStore(config.store);
      const faulty = options.faulty ? new FaultyStore(inner) : undefined;
      const store = new CountingStore(faulty ?? inner, options);
      const cairn = new Cairn(config, { store, log });
      // Cairn.close() closes the log too; the rig closes the log itself, last.
      open.push({ close: () => store.close() });
      return { cairn, store, ...(faulty ? { faulty } : {}) };
    },
    state: () => readState(join(config.stateDir, 'p0')),
  };
}

/** Records `{ key, value: { n, bad? } }`; the processors below count per key. */
function numbered(count: number, bad: number[] = []): AppendRecord[] {
  return Array.from({ length: count }, (_, i) => ({ key: `k${i % 3}`, value: { n: i, ...(bad.includes(i) ? { bad: true } : {}) } }));
}

/** Writes `seen/<lsn>` and bumps `count` with a fresh object per put, then throws on `bad`. */
const throwing: Processor = {
  name: 'throwing',
  async apply(record, state) {
    state.put(`seen/${String(record.lsn).padStart(4, '0')}`, record.lsn);
    const count = ((await state.get('count')) as number | undefined) ?? 0;
    state.put('count', count + 1);
    if ((record.value as { bad?: boolean }).bad) throw new Error(`bad record ${record.lsn}`);
  },
};


/** Counts the checkpoints a repository is asked for: the LSN of each capture, and how many ran at once. */
function watchCheckpoints(repo: SnapshotRepository): { captured: number[]; inFlight: number; maxInFlight: number } {
  const seen = { captured: [] as number[], inFlight: 0, maxInFlight: 0 };
  const original = repo.checkpoint.bind(repo);
  repo.checkpoint = (capture: Capture, options) => {
    seen.inFlight++;
    seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
    seen.captured.push(capture.lsn);
    return original(capture, options).finally(() => seen.inFlight--);
  };
  return seen;
}

describe('starting state', () => {
  it('uses intact local state without a single object-store request', async () => {
    const r = rig();
    const events = bankEvents(600, 5);
    await r.log.append('p0', events.slice(0, 500));
    const first = r.cairn();
    const p1 = first.cairn.processor('p0', bank, { everyRecords: 200 });
    const s1 = await p1.run({ stopAtEnd: true, checkpointOnExit: true });
    await p1.close();
    expect(s1).toMatchObject({ start: { source: 'empty', lsn: -1 }, appliedLsn: 499 });
    expect(s1.snapshots.filter((s) => s.status === 'published').length).toBeGreaterThanOrEqual(2);
    expect(first.store.total).toBeGreaterThan(0);

    // Restart with more records to apply (fewer than everyRecords): zero requests.
    await r.log.append('p0', events.slice(500));
    const second = r.cairn();
    const p2 = second.cairn.processor('p0', bank, { everyRecords: 200 });
    const s2 = await p2.run({ stopAtEnd: true });
    await p2.close();
    expect(s2).toMatchObject({ start: { source: 'local', lsn: 499 }, appliedLsn: 599, recordsApplied: 100, snapshots: [] });
    expect(second.store.requests).toEqual([]);

    // Still none after a trim the local state is not behind (it is checked without the store).
    await r.log.trim('p0', 450);
    const third = r.cairn();
    const p3 = third.cairn.processor('p0', bank);
    const s3 = await p3.run({ stopAtEnd: true });
    await p3.close();
    expect(s3).toMatchObject({ start: { source: 'local', lsn: 599 }, appliedLsn: 599, recordsApplied: 0 });
    expect(third.store.requests).toEqual([]);

    const state = await r.state();
    expect(state.lsn).toBe(599);
    expect(state.entries).toEqual(bankModel(events));
  });

  it('removes what killed workers left half-done beside the state, and nothing else', async () => {
    const r = rig();
    await r.log.append('p0', bankEvents(10, 1));
    const root = r.config.stateDir;
    const planted = {
      mine: ['.staging/p0-01M80K3CTEEZVJVTK2FKDHZSC3/000005.ldb', '.p0.restore-0a1b2c3d/000005.ldb', '.p0.restore-4242-123-0a1b2c3d/verified/x', '.p0.peek-deadbeef/CURRENT', 'p0.old-0a1b2c3d/x'],
      others: ['.staging/p1-01M80K3CTEEZVJVTK2FKDHZSC3/x', '.staging/p0-checkpoint-123/x', '.p1.restore-0a1b2c3d/x', 'p0.old-x/x', 'p0-x/x', '.p0.restore-notmine/x'],
    };
    for (const f of [...planted.mine, ...planted.others]) {
      mkdirSync(join(root, dirname(f)), { recursive: true });
      writeFileSync(join(root, f), 'x');
    }
    const p = r.cairn().cairn.processor('p0', bank);
    await p.run({ stopAtEnd: true });
    await p.close();
    for (const f of planted.mine) expect(existsSync(join(root, dirname(f))), f).toBe(false);
    for (const f of planted.others) expect(existsSync(join(root, f)), f).toBe(true);
  });
});

describe('a processor that throws', () => {
  it("with onBadRecord 'stop' fails PROCESSOR_FAILED at the bad LSN and commits nothing of that batch", async () => {
    const r = rig();
    await r.log.append('p0', numbered(50, [25]));
    const { cairn } = r.cairn();
    const p = cairn.processor('p0', throwing);
    const err = await p.run({ stopAtEnd: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await p.close();
    expect(err).toBeInstanceOf(CairnError);
    expect(err).toMatchObject({ code: 'PROCESSOR_FAILED', details: { partition: 'p0', lsn: 25 } });
    expect((err as Error).message).toMatch(/throwing.*LSN 25.*bad record 25/);

    // Batches of 10: LSN 0..19 are committed, nothing of 20..29 (not even 20..24).
    const state = await r.state();
    expect(state.lsn).toBe(19);
    expect(state.entries.get('count')).toBe(20);
    expect([...state.entries.keys()].filter((k) => k.startsWith('seen/'))).toHaveLength(20);
    expect(state.entries.has('seen/0020')).toBe(false);

    // A restart retries from LSN 20 and fails on the same record again.
    const again = r.cairn().cairn.processor('p0', throwing);
    await expect(again.run({ stopAtEnd: true })).rejects.toMatchObject({ code: 'PROCESSOR_FAILED', details: { lsn: 25 } });
    await again.close();
    expect((await r.state()).lsn).toBe(19);
  });

  it("with onBadRecord 'skip' drops only the bad record's writes, keeps its batch, and counts it", async () => {
    const r = rig({ runtime: { batchSize: 10, onBadRecord: 'skip' } });
    const bad = [3, 25, 26, 49];
    await r.log.append('p0', numbered(50, bad));
    const { cairn } = r.cairn();
    const p = cairn.processor('p0', throwing);
    const summary = await p.run({ stopAtEnd: true });
    await p.close();
    expect(summary).toMatchObject({ appliedLsn: 49, recordsApplied: 46, recordsSkipped: 4, stoppedBy: 'end-of-log' });
    const metric = await cairn.metrics.recordsSkipped.get();
    expect(metric.values).toEqual([expect.objectContaining({ labels: { partition: 'p0', reason: 'processor' }, value: 4 })]);

    const state = await r.state();
    expect(state.lsn).toBe(49);
    expect(state.entries.get('count')).toBe(46);
    const seen = [...state.entries.keys()].filter((k) => k.startsWith('seen/')).map((k) => Number(k.slice(5)));
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i).filter((i) => !bad.includes(i)));
  });

  it("with 'skip', in-place changes a bad record made to a value it read are rolled back too", async () => {
    // The common processor shape: read an object, change it, validate, put it back. A record
    // that throws after changing the object it read must leave no trace, whatever the batch.
    const mutating: Processor = {
      name: 'mutating',
      async apply(record, state) {
        const acc = ((await state.get('acc')) as { n: number; sum: number } | undefined) ?? { n: 0, sum: 0 };
        acc.n += 1;
        acc.sum += (record.value as { n: number }).n;
        if ((record.value as { bad?: boolean }).bad) throw new Error('rejected after mutating');
        state.put('acc', acc);
      },
    };
    const r = rig({ runtime: { batchSize: 10, onBadRecord: 'skip' } });
    const bad = [5, 12, 13];
    await r.log.append('p0', numbered(20, bad));
    const p = r.cairn().cairn.processor('p0', mutating);
    await p.run({ stopAtEnd: true });
    await p.close();
    const good = Array.from({ length: 20 }, (_, i) => i).filter((i) => !bad.includes(i));
    expect((await r.state()).entries.get('acc')).toEqual({ n: good.length, sum: good.reduce((a, b) => a + b, 0) });
  });
});

describe('state within a batch', () => {
  it('get sees the batch’s own puts and deletes, within a record and across records', async () => {
    const r = rig({ runtime: { batchSize: 100, onBadRecord: 'stop' } });
    await r.log.append('p0', numbered(30));
    await r.log.append('p0', [{ key: 'pre', value: { n: -1 } }]);
    const observed: Array<[number, unknown, unknown, unknown]> = [];
    const chain: Processor = {
      name: 'chain',
      async apply(record, state) {
        const previous = await state.get('last');
        state.put('last', record.lsn);
        const own = await state.get('last');
        if (record.lsn % 4 === 3) state.del('last');
        observed.push([record.lsn, previous, own, await state.get('last')]);
      },
    };
    const p = r.cairn().cairn.processor('p0', chain);
    await p.run({ untilLsn: 29 });
    await p.close();
    // 30 records in one batch: each sees the previous record's put, or undefined after a delete.
    for (const [lsn, previous, own, after] of observed) {
      expect(previous).toEqual(lsn === 0 || (lsn - 1) % 4 === 3 ? undefined : lsn - 1);
      expect(own).toBe(lsn);
      expect(after).toEqual(lsn % 4 === 3 ? undefined : lsn);
    }
    expect(observed).toHaveLength(30);
    const state = await r.state();
    expect(state.lsn).toBe(29);
    expect(state.entries.get('last')).toBe(29);

    // The next batch reads what the previous one committed.
    const next = r.cairn().cairn.processor('p0', chain);
    await next.run({ stopAtEnd: true });
    await next.close();
    expect(observed.at(-1)).toEqual([30, 29, 30, 30]);
  });

  it('the committed state does not depend on the batch size (property)', async () => {
    // A processor that reads, changes, and only sometimes writes back (no throw involved).
    const sometimes: Processor = {
      name: 'sometimes',
      async apply(record, state) {
        const v = record.value as { keep: boolean; add: number };
        const key = record.key!;
        const a = ((await state.get(key)) as { total: number; ops: number } | undefined) ?? { total: 0, ops: 0 };
        a.total += v.add;
        a.ops += 1;
        if (v.keep) state.put(key, a);
      },
    };
    const model = (records: AppendRecord[]) => {
      const m = new Map<string, { total: number; ops: number }>();
      for (const rec of records) {
        const v = rec.value as { keep: boolean; add: number };
        if (!v.keep) continue;
        const key = rec.key as string;
        const a = { ...(m.get(key) ?? { total: 0, ops: 0 }) };
        a.total += v.add;
        a.ops += 1;
        m.set(key, a);
      }
      return new Map([...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c'), keep: fc.boolean(), add: fc.integer({ min: 1, max: 100 }) }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 25 }),
        async (ops, batchSize) => {
          const r = rig({ runtime: { batchSize, onBadRecord: 'stop' } });
          const records = ops.map((o) => ({ key: o.key, value: { keep: o.keep, add: o.add } }));
          await r.log.append('p0', records);
          const p = r.cairn().cairn.processor('p0', sometimes);
          await p.run({ stopAtEnd: true });
          await p.close();
          const state = await r.state();
          expect(state.lsn).toBe(records.length - 1);
          expect(state.entries).toEqual(model(records));
          await r.log.close();
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('snapshots', () => {
  it('are triggered by records applied, one at a time, and never pause applying for the upload', async () => {
    const r = rig({ runtime: { batchSize: 10, onBadRecord: 'stop' } });
    const events = bankEvents(1000, 8);
    await r.log.append('p0', events.slice(0, 99));
    const { cairn, faulty } = r.cairn({ faulty: true });
    const checkpoints = watchCheckpoints(cairn.snapshots);
    const { captured } = checkpoints;
    const p = cairn.processor('p0', bank, { everyRecords: 100 });

    // 99 records: below the threshold, no snapshot however long the worker idles (once all
    // are applied, which is waited for, not assumed to take less than the idle time).
    const idle = new AbortController();
    const idleRun = p.run({ signal: idle.signal });
    for (const deadline = Date.now() + 20_000; p.appliedLsn < 98 && Date.now() < deadline; ) await sleep(5);
    expect(p.appliedLsn).toBe(98);
    await sleep(700);
    idle.abort();
    expect((await idleRun).snapshots).toEqual([]);
    expect(captured).toEqual([]);

    // The 100th record triggers one. Hold its upload and append the rest: applying goes on
    // to the end, and no second snapshot starts while the first is in flight.
    const gate = faulty!.gate('uploadFile');
    await r.log.append('p0', events.slice(99, 100));
    const stop = new AbortController();
    const running = p.run({ signal: stop.signal, checkpointOnExit: true });
    await gate.arrived;
    expect(captured).toEqual([99]);
    await r.log.append('p0', events.slice(100));
    const deadline = Date.now() + 20_000;
    while (p.appliedLsn < 999 && Date.now() < deadline) await sleep(5);
    expect(p.appliedLsn).toBe(999);
    expect(captured).toEqual([99]);
    expect(checkpoints.inFlight).toBe(1);
    gate.release();
    while (checkpoints.inFlight > 0 && Date.now() < deadline) await sleep(5);
    stop.abort();
    const summary = await running;
    await p.close();

    expect(checkpoints.maxInFlight).toBe(1);
    // After the held one, the exit checkpoint: nothing else started in between.
    expect(captured).toEqual([99, 999]);
    expect(summary.snapshots.map((s) => [s.status, s.metadata.lsn])).toEqual([
      ['published', 99],
      ['published', 999],
    ]);
    const latest = await cairn.snapshots.latest('p0');
    expect(latest?.pointer.lsn).toBe(999);
  });

  it('with a slow store, snapshots are spaced at least everyRecords apart and never overlap', async () => {
    const r = rig({ runtime: { batchSize: 10, onBadRecord: 'stop' } });
    const events = bankEvents(2000, 9);
    await r.log.append('p0', events);
    const { cairn } = r.cairn({ transferDelayMs: 15 });
    const checkpoints = watchCheckpoints(cairn.snapshots);
    const { captured } = checkpoints;
    const p = cairn.processor('p0', bank, { everyRecords: 100 });
    const summary = await p.run({ stopAtEnd: true });
    await p.close();
    expect(checkpoints.maxInFlight).toBe(1);
    expect(captured[0]).toBe(99);
    expect(captured.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < captured.length; i++) expect(captured[i]! - captured[i - 1]!).toBeGreaterThanOrEqual(100);
    expect(summary.snapshots.map((s) => s.metadata.lsn)).toEqual(captured);
    expect((await r.state()).entries).toEqual(bankModel(events));
  });
});

describe('the snapshot policy (everyRecords)', () => {
  it('a burst that ends while a snapshot uploads is covered once it settles: the newest snapshot ends less than everyRecords behind', async () => {
    const r = rig({ runtime: { batchSize: 100, onBadRecord: 'stop' } });
    await r.log.append('p0', bankEvents(5000, 12));
    const { cairn, faulty } = r.cairn({ faulty: true });
    const checkpoints = watchCheckpoints(cairn.snapshots);
    const { captured } = checkpoints;
    // The first upload is held until the whole burst is applied.
    const gate = faulty!.gate('uploadFile');
    const p = cairn.processor('p0', bank, { everyRecords: 1000 });
    const stop = new AbortController();
    const running = p.run({ signal: stop.signal });
    try {
      await gate.arrived;
      expect(captured).toEqual([999]);
      const deadline = Date.now() + 60_000;
      while (p.appliedLsn < 4999 && Date.now() < deadline) await sleep(10);
      expect(p.appliedLsn).toBe(4999);
      gate.release();

      // Idle: everything applied, and no snapshot in flight for a while (an empty read every 500 ms).
      let quietSince = Date.now();
      while (Date.now() - quietSince < 2000 && Date.now() < deadline) {
        await sleep(20);
        if (checkpoints.inFlight > 0) quietSince = Date.now();
      }
      expect(checkpoints.inFlight).toBe(0);
      const store = createStore(r.config.store);
      const latest = await readLatest(store, 'p0');
      await store.close();
      expect(latest?.pointer.lsn).toBeGreaterThan(p.appliedLsn - 1000);
      expect(captured[0]).toBe(999);
      expect(captured.at(-1)).toBe(4999);
    } finally {
      gate.release();
      stop.abort();
      await running;
      await p.close();
    }
  });

  it('everyRecords 0 never snapshots by count, however much is applied', async () => {
    const r = rig({ runtime: { batchSize: 10, onBadRecord: 'stop' } });
    await r.log.append('p0', bankEvents(300, 13));
    const { cairn, store } = r.cairn();
    const p = cairn.processor('p0', bank, { everyRecords: 0 });
    const stop = new AbortController();
    const running = p.run({ signal: stop.signal });
    const deadline = Date.now() + 20_000;
    while (p.appliedLsn < 299 && Date.now() < deadline) await sleep(10);
    await sleep(1200); // a few empty reads, each of which asks the policy
    stop.abort();
    expect((await running).snapshots).toEqual([]);
    await p.close();
    // Fresh state and no snapshot: nothing was ever written to the store.
    expect(store.requests.filter((q) => !/^(get|head|list)/.test(q))).toEqual([]);
  });
});

describe('untilLsn', () => {
  it('stops exactly at that LSN whatever the batch size, and resumes from there', async () => {
    const r = rig({ runtime: { batchSize: 64, onBadRecord: 'stop' } });
    const events = bankEvents(1000, 10);
    await r.log.append('p0', events);
    const { cairn } = r.cairn();
    const p = cairn.processor('p0', bank);
    expect(await p.run({ untilLsn: 777 })).toMatchObject({ appliedLsn: 777, recordsApplied: 778, stoppedBy: 'until-lsn' });
    // Already past it: stops at once, applies nothing.
    expect(await p.run({ untilLsn: 500 })).toMatchObject({ appliedLsn: 777, recordsApplied: 0, stoppedBy: 'until-lsn' });
    expect(await p.run({ untilLsn: 778 })).toMatchObject({ appliedLsn: 778, recordsApplied: 1, stoppedBy: 'until-lsn' });
    await p.close();
    let state = await r.state();
    expect(state.lsn).toBe(778);
    expect(state.entries).toEqual(bankModel(events, 778));

    // Beyond the end: --stop-at-end ends it at the end of the log.
    const q = r.cairn().cairn.processor('p0', bank);
    expect(await q.run({ untilLsn: 5000, stopAtEnd: true })).toMatchObject({ appliedLsn: 999, stoppedBy: 'end-of-log' });
    await q.close();
    state = await r.state();
    expect(state.entries).toEqual(bankModel(events));
  });
});
