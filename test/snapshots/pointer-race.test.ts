import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { snapshotFolderName } from '../../src/core/ids.js';
import { layout } from '../../src/snapshots/layout.js';
import { readLatest, readMetadata } from '../../src/snapshots/pointer.js';
import type { CheckpointResult, SnapshotRepository } from '../../src/snapshots/repository.js';
import { PartitionState } from '../../src/state/partition-state.js';
import type { Capture } from '../../src/state/types.js';
import { createStore } from '../../src/store/index.js';
import type { ObjectStore } from '../../src/store/types.js';
import { BACKENDS } from '../helpers/backends.js';
import { FaultyStore } from '../helpers/faulty-store.js';
import type { ChildJob } from '../helpers/race-child.js';
import { dumpState, folders, hasObject, modelOf, removeDir, repository, sortedEntries, storeConfigFor, tempDir, writesAt } from '../helpers/snapshot-fixtures.js';

/**
 * latest.json only ever moves forward in LSN, whatever the interleaving of uploaders of one
 * partition (README, Architecture, "Checkpoint"): deterministic interleavings on both
 * backends, a randomized race with a reader polling the pointer, and the same race between
 * real OS processes on the filesystem store.
 */

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CHILD = join(ROOT, 'test/helpers/race-child.ts');
const P = 'p0';
const NODE = 'n1';

/** One state, captured at many LSNs (captures are staged hard links: they stay valid). */
interface CaptureBank {
  dir: string;
  lsns: number[];
  at(lsn: number): Capture;
  model(lsn: number): Map<string, unknown>;
  close(): Promise<void>;
}

async function captureBank(lsns: number[]): Promise<CaptureBank> {
  const dir = await tempDir('race-state');
  const state = await PartitionState.open(join(dir, 'state'), { writeBufferSize: 64 * 1024 });
  const captures = new Map<number, Capture>();
  const committed: number[] = [];
  for (const lsn of [...lsns].sort((a, b) => a - b)) {
    await state.commit(writesAt(lsn), lsn);
    committed.push(lsn);
    captures.set(lsn, await state.capture(join(dir, 'staging', `at-${lsn}`)));
  }
  await state.close();
  return {
    dir,
    lsns: committed,
    at: (lsn) => captures.get(lsn) ?? (() => { throw new Error(`no capture at ${lsn}`); })(),
    model: (lsn) => modelOf(committed.filter((l) => l <= lsn)),
    close: () => removeDir(dir),
  };
}

/** Every store built for one test shares a root (fs) or a prefix (s3): same partition, many uploaders. */
interface World {
  dir: string;
  newStore(): ObjectStore;
  cleanup(): Promise<void>;
}

async function world(backend: (typeof BACKENDS)[number]): Promise<World> {
  const dir = await tempDir(`race-${backend.name}`);
  const raw = backend.storeConfig('pointer-race');
  const config = storeConfigFor(raw, dir);
  const stores: ObjectStore[] = [];
  return {
    dir,
    newStore: () => {
      const s = createStore(config);
      stores.push(s);
      return s;
    },
    cleanup: async () => {
      if (backend.name === 's3' && stores[0]) {
        const keys: string[] = [];
        for await (const o of stores[0].list('')) keys.push(o.key);
        if (keys.length > 0) await stores[0].delete(keys);
      }
      for (const s of stores) await s.close();
      await removeDir(dir);
    },
  };
}

const checkpointOf = (repo: SnapshotRepository, capture: Capture, partition = P): Promise<CheckpointResult> =>
  repo.checkpoint(capture, { partition, node: NODE, source: `embedded:${partition}` });

const lsnOfPath = (path: string) => Number(path.slice(path.lastIndexOf('_') + 1));
const folderOf = (r: CheckpointResult) => snapshotFolderName(r.metadata.snapshotId, r.metadata.lsn);

async function expectPointerRestores(store: ObjectStore, repo: SnapshotRepository, bank: CaptureBank, dir: string, partition: string, lsn: number): Promise<void> {
  const latest = await readLatest(store, partition);
  expect(latest?.pointer.lsn).toBe(lsn);
  for (const e of latest!.pointer.retained) expect((await repo.verify(partition, e.snapshotId)).ok).toBe(true);
  const target = join(dir, 'restored', partition);
  const restored = await repo.restore({ partition, targetDir: target });
  expect(restored.metadata.lsn).toBe(lsn);
  expect(restored.skipped).toEqual([]);
  const dump = await dumpState(target);
  expect(dump.lsn).toBe(lsn);
  expect(dump.entries).toEqual(sortedEntries(bank.model(lsn)));
}

let bank: CaptureBank;
beforeAll(async () => {
  // Deterministic cases use 10, 50, 100; the randomized ones any multiple of 5 up to 200.
  bank = await captureBank(Array.from({ length: 40 }, (_, i) => (i + 1) * 5));
});
afterAll(async () => {
  await bank?.close();
});

for (const backend of BACKENDS) {
  describe(`pointer race, deterministic interleavings (${backend.name})`, () => {
    let w: World;
    beforeAll(async () => {
      w = await world(backend);
    });
    afterAll(async () => {
      await w?.cleanup();
    });

    const cases = [
      { first: 'A', seeded: false, retain: 3 },
      { first: 'A', seeded: true, retain: 3 },
      { first: 'B', seeded: true, retain: 3 },
      { first: 'B', seeded: true, retain: 1 },
    ] as const;

    for (const c of cases) {
      it(`A (LSN 100) and B (LSN 50) both hold a stale pointer; ${c.first} publishes first${c.seeded ? ', over an existing snapshot at LSN 10' : ''}, retain ${c.retain}`, async () => {
        const partition = `p-${c.first.toLowerCase()}-${c.seeded ? 's' : 'n'}-${c.retain}`;
        const seed = c.seeded ? await checkpointOf(repository(w.newStore(), c.retain), bank.at(10), partition) : undefined;
        expect(seed?.status ?? 'published').toBe('published');
        const fa = new FaultyStore(w.newStore());
        const fb = new FaultyStore(w.newStore());
        const latestKey = layout.latest(partition);
        // Both uploaders stop right before their latest.json PUT: uploads and metadata done,
        // each holding the pointer it read at the start.
        const ga = fa.gate('put', latestKey);
        const gb = fb.gate('put', latestKey);
        const pa = checkpointOf(repository(fa, c.retain), bank.at(100), partition);
        if (!seed) {
          // No pointer yet: once A's folder is complete, it bars B, which backs off without a PUT.
          await ga.arrived;
          const rb = await checkpointOf(repository(fb, c.retain), bank.at(50), partition);
          expect(rb.status).toBe('superseded');
          if (rb.status === 'superseded') expect(rb.currentLsn).toBe(100);
          ga.release();
          const ra = await pa;
          expect(ra.status).toBe('published');
          expect(fb.calls.filter((x) => x.op === 'put' && x.key === latestKey)).toEqual([]);
          const observer = w.newStore();
          expect((await readLatest(observer, partition))?.pointer.retained.map((e) => e.lsn)).toEqual([100]);
          expect(await folders(observer, partition)).toEqual([folderOf(ra)]);
          return;
        }
        const pb = checkpointOf(repository(fb, c.retain), bank.at(50), partition);
        await Promise.all([ga.arrived, gb.arrived]);
        const observer = w.newStore();
        expect((await readLatest(observer, partition))?.pointer.lsn).toBe(seed?.metadata.lsn);

        let ra: CheckpointResult;
        let rb: CheckpointResult;
        if (c.first === 'A') {
          ga.release();
          ra = await pa;
          expect((await readLatest(observer, partition))?.pointer.lsn).toBe(100);
          gb.release();
          rb = await pb;
        } else {
          gb.release();
          rb = await pb;
          expect((await readLatest(observer, partition))?.pointer.lsn).toBe(50);
          ga.release();
          ra = await pa;
        }

        const latestPuts = (f: FaultyStore) => f.calls.filter((x) => x.op === 'put' && x.key === latestKey).map((x) => x.outcome);
        const pointer = (await readLatest(observer, partition))!.pointer;
        expect(pointer.lsn).toBe(100);
        expect(pointer.snapshotId).toBe(ra.metadata.snapshotId);
        expect(ra.status).toBe('published');
        const present = await folders(observer, partition);
        if (c.first === 'A') {
          // B lost: its conditional PUT failed, it re-read, saw 100 >= 50 and backed off.
          expect(rb.status).toBe('superseded');
          if (rb.status === 'superseded') expect(rb.currentLsn).toBe(100);
          expect(latestPuts(fb)).toEqual(['error']);
          expect(present).not.toContain(folderOf(rb));
          expect(await hasObject(observer, layout.metadata(layout.snapshotPath(partition, rb.metadata.snapshotId, 50)))).toBe(false);
          expect(pointer.retained.map((e) => e.lsn)).toEqual(seed ? [100, 10].slice(0, c.retain) : [100]);
        } else {
          // Both published, in LSN order: A's first PUT lost to B's, A re-read and went on top.
          expect(rb.status).toBe('published');
          expect(latestPuts(fb)).toEqual(['ok']);
          expect(latestPuts(fa)).toEqual(['error', 'ok']);
          const expectedRetained = (seed ? [100, 50, 10] : [100, 50]).slice(0, c.retain);
          expect(pointer.retained.map((e) => e.lsn)).toEqual(expectedRetained);
          if (rb.status === 'published' && ra.status === 'published') {
            const afterB = (seed ? [50, 10] : [50]).slice(0, c.retain);
            expect(rb.evicted.map(lsnOfPath)).toEqual((seed ? [50, 10] : [50]).slice(c.retain));
            expect(ra.evicted.map(lsnOfPath)).toEqual([100, ...afterB].slice(c.retain));
          }
        }
        // Exactly the retained folders remain: the loser's and the evicted ones are gone.
        expect(present).toEqual(pointer.retained.map((e) => snapshotFolderName(e.snapshotId, e.lsn)).sort());
        await expectPointerRestores(observer, repository(observer, c.retain), bank, w.dir, partition, 100);
      });
    }

    it('an uploader that reads the pointer after a higher LSN landed backs off without writing it', async () => {
      const partition = 'p-late';
      const ra = await checkpointOf(repository(w.newStore(), 3), bank.at(100), partition);
      const fb = new FaultyStore(w.newStore());
      const rb = await checkpointOf(repository(fb, 3), bank.at(50), partition);
      expect(ra.status).toBe('published');
      expect(rb.status).toBe('superseded');
      expect(fb.calls.filter((x) => x.op === 'put' && x.key === layout.latest(partition))).toEqual([]);
      const observer = w.newStore();
      expect(await folders(observer, partition)).toEqual([folderOf(ra)]);
      expect((await readLatest(observer, partition))?.pointer.lsn).toBe(100);
    });

    it('two uploaders of the same LSN: one publishes, the other is superseded and cleans up', async () => {
      const partition = 'p-same';
      const fa = new FaultyStore(w.newStore());
      const fb = new FaultyStore(w.newStore());
      const ga = fa.gate('put', layout.latest(partition));
      const gb = fb.gate('put', layout.latest(partition));
      const pa = checkpointOf(repository(fa, 3), bank.at(100), partition);
      const pb = checkpointOf(repository(fb, 3), bank.at(100), partition);
      await Promise.all([ga.arrived, gb.arrived]);
      ga.release();
      gb.release();
      const results = await Promise.all([pa, pb]);
      expect(results.map((r) => r.status).sort()).toEqual(['published', 'superseded']);
      const winner = results.find((r) => r.status === 'published')!;
      const observer = w.newStore();
      expect((await readLatest(observer, partition))?.pointer.snapshotId).toBe(winner.metadata.snapshotId);
      expect(await folders(observer, partition)).toEqual([folderOf(winner)]);
    });
  });
}

/** Reads latest.json in a loop until stopped; records every LSN seen and any violation. */
function pollPointer(store: ObjectStore, partition: string): { stop: () => Promise<{ seen: number[]; violations: string[] }> } {
  const seen: number[] = [];
  const violations: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const read = await readLatest(store, partition);
      if (read) {
        const last = seen[seen.length - 1];
        if (last !== undefined && read.pointer.lsn < last) violations.push(`pointer went back from ${last} to ${read.pointer.lsn}`);
        if (last !== read.pointer.lsn) seen.push(read.pointer.lsn);
        // A reader following the pointer finds the snapshot complete, unless the pointer has
        // moved on in the meantime (eviction only follows a newer pointer).
        try {
          await readMetadata(store, read.pointer.path);
        } catch (err) {
          if (!(err instanceof CairnError && err.code === 'NOT_FOUND')) throw err;
          const again = await readLatest(store, partition);
          if (again?.pointer.snapshotId === read.pointer.snapshotId) violations.push(`pointer at ${read.pointer.path} whose metadata.json is missing`);
        }
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { seen, violations };
    },
  };
}

describe('pointer race, randomized (fs store, one process)', () => {
  let w: World;
  beforeAll(async () => {
    w = await world(BACKENDS.find((b) => b.name === 'fs')!);
  });
  afterAll(async () => {
    await w?.cleanup();
  });

  it('N concurrent uploaders through separate repositories: the pointer never decreases and ends at the max LSN', { timeout: 10 * 60_000 }, async () => {
    let run = 0;
    const lsnArb = fc.constantFrom(...bank.lsns);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ lsn: lsnArb, delayMs: fc.nat(4) }), { minLength: 2, maxLength: 5 }),
        fc.option(lsnArb, { nil: undefined }),
        fc.integer({ min: 1, max: 3 }),
        async (uploaders, seedLsn, retain) => {
          const partition = `r${run++}`;
          if (seedLsn !== undefined) expect((await checkpointOf(repository(w.newStore(), retain), bank.at(seedLsn), partition)).status).toBe('published');
          const observer = w.newStore();
          const poller = pollPointer(observer, partition);
          const results = await Promise.all(
            uploaders.map(async (u) => {
              await new Promise((r) => setTimeout(r, u.delayMs));
              // A store and a repository of its own: nothing shared in memory.
              return checkpointOf(repository(w.newStore(), retain), bank.at(u.lsn), partition);
            }),
          );
          const { seen, violations } = await poller.stop();
          expect(violations).toEqual([]);
          for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);

          const max = Math.max(...uploaders.map((u) => u.lsn), seedLsn ?? -1);
          const pointer = (await readLatest(observer, partition))!.pointer;
          expect(pointer.lsn).toBe(max);
          for (const [i, r] of results.entries()) {
            expect(r.metadata.lsn).toBe(uploaders[i]!.lsn);
            if (r.status === 'superseded') expect(r.currentLsn).toBeGreaterThanOrEqual(r.metadata.lsn);
          }
          if (max > (seedLsn ?? -1)) {
            // Exactly one uploader of the top LSN published it; it is the head.
            const top = results.filter((r) => r.status === 'published' && r.metadata.lsn === max);
            expect(top.length).toBe(1);
            expect(pointer.snapshotId).toBe(top[0]!.metadata.snapshotId);
          }
          expect(pointer.retained.length).toBeLessThanOrEqual(retain);
          for (let i = 1; i < pointer.retained.length; i++) expect(pointer.retained[i]!.lsn).toBeLessThan(pointer.retained[i - 1]!.lsn);
          // No leak, no loss: the folders present are exactly the retained ones.
          expect(await folders(observer, partition)).toEqual(pointer.retained.map((e) => snapshotFolderName(e.snapshotId, e.lsn)).sort());
          await expectPointerRestores(observer, repository(observer, retain), bank, w.dir, partition, max);
        },
      ),
      { numRuns: 50, endOnFailure: true },
    );
  });
});

interface Child {
  ready: Promise<void>;
  go(): void;
  done: Promise<{ done?: unknown; error?: { code: string | null; message: string } }>;
}

function startChild(job: ChildJob): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  let last: string | undefined;
  lines.on('line', (l) => {
    if (l === 'ready') onReady();
    else if (l.startsWith('{')) last = l;
  });
  const done = new Promise<{ done?: unknown; error?: { code: string | null; message: string } }>((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (last) resolvePromise(JSON.parse(last) as { done?: unknown });
      else reject(new Error(`child exited ${code} without a result: ${stderr}`));
    });
  });
  return { ready, go: () => child.stdin.end('go\n'), done };
}

async function raceChildren(jobs: ChildJob[]): Promise<Array<{ done?: unknown; error?: { code: string | null; message: string } }>> {
  const children = jobs.map(startChild);
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.go();
  return Promise.all(children.map((c) => c.done));
}

describe('pointer race between OS processes (fs store)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('race-proc');
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  it('conditional put is linearisable between processes: no lost increment, each create won once', async () => {
    const root = join(dir, 'prim');
    const increments = 150;
    const keys = Array.from({ length: 60 }, (_, i) => `once/k${i}`);
    const results = await raceChildren([
      { kind: 'counter', root, key: 'counter.json', increments },
      { kind: 'counter', root, key: 'counter.json', increments },
      { kind: 'create', root, keys, tag: 'a' },
      { kind: 'create', root, keys, tag: 'b' },
    ]);
    expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
    const store = createStore(storeConfigFor({ url: `file://${root}` }, dir));
    const { body } = await store.get('counter.json');
    expect(JSON.parse(body.toString())).toEqual({ n: 2 * increments });
    const wonA = (results[2]!.done as { won: string[] }).won;
    const wonB = (results[3]!.done as { won: string[] }).won;
    expect([...wonA, ...wonB].sort()).toEqual([...keys].sort());
    expect(wonA.filter((k) => wonB.includes(k))).toEqual([]);
    for (const k of keys) expect((await store.get(k)).body.toString()).toBe(wonA.includes(k) ? 'a' : 'b');
    const conflicts = results.slice(0, 2).map((r) => (r.done as { conflicts: number }).conflicts);
    console.log(`[pointer-race] cross-process counter: ${2 * increments} increments, ${conflicts.join('+')} conflicts retried`);
    await store.close();
  });

  it('two processes checkpointing interleaved LSNs: the pointer never decreases, ends at the max and restores', async () => {
    const root = join(dir, 'store');
    const partition = 'p0';
    const retain = 2;
    const lsns = bank.lsns.filter((l) => l <= 120);
    const job = (node: string, mine: number[]): ChildJob => ({
      kind: 'checkpoint',
      root,
      partition,
      retain,
      node,
      captures: mine.map((l) => {
        const c = bank.at(l);
        return { dir: c.dir, lsn: c.lsn, files: c.files };
      }),
    });
    // One process climbs through the even steps, the other through the odd ones, so every
    // publish races one from the other process at a neighbouring LSN.
    const evens = lsns.filter((_, i) => i % 2 === 0);
    const odds = lsns.filter((_, i) => i % 2 === 1);
    const store = createStore(storeConfigFor({ url: `file://${root}` }, dir));
    const poller = pollPointer(store, partition);
    const results = await raceChildren([job('proc-a', evens), job('proc-b', odds)]);
    const { seen, violations } = await poller.stop();
    expect(results.map((r) => r.error)).toEqual([undefined, undefined]);
    expect(violations).toEqual([]);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    const outcomes = results.flatMap((r) => (r.done as { results: Array<{ lsn: number; status: string; currentLsn?: number }> }).results);
    expect(outcomes.length).toBe(lsns.length);
    for (const o of outcomes) if (o.status === 'superseded') expect(o.currentLsn!).toBeGreaterThanOrEqual(o.lsn);
    const max = Math.max(...lsns);
    expect(outcomes.filter((o) => o.lsn === max).map((o) => o.status)).toEqual(['published']);
    const pointer = (await readLatest(store, partition))!.pointer;
    expect(pointer.retained.length).toBeLessThanOrEqual(retain);
    expect(await folders(store, partition)).toEqual(pointer.retained.map((e) => snapshotFolderName(e.snapshotId, e.lsn)).sort());
    console.log(`[pointer-race] two processes: ${outcomes.filter((o) => o.status === 'published').length} published, ${outcomes.filter((o) => o.status === 'superseded').length} superseded; pointer saw ${seen.length} distinct LSNs`);
    await expectPointerRestores(store, repository(store, retain), bank, dir, partition, max);
    await store.close();
  });
});
