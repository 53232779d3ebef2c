import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { normaliseConfig } from '../../src/core/config.js';
import { snapshotFolderName } from '../../src/core/ids.js';
import type { LogRecord } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import { layout } from '../../src/snapshots/layout.js';
import { readLatest } from '../../src/snapshots/pointer.js';
import type { CheckpointResult, SnapshotRepository } from '../../src/snapshots/repository.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { createBackend, withRetry } from '../../src/store/index.js';
import type { ObjectStore } from '../../src/store/types.js';
import { FaultyStore } from '../helpers/faulty-store.js';
import { expectCode } from '../helpers/fixtures.js';
import {
  dumpState,
  folders,
  fsStore,
  hasObject,
  repository,
  restoreLeftovers,
  sortedEntries,
  stateRig,
  type StateRig,
} from '../helpers/snapshot-fixtures.js';

/**
 * Store outages and damaged objects around checkpoints and restores. Faults are injected by
 * a wrapper over the real filesystem store (test/helpers/faulty-store.ts); injected
 * failures are CairnError STORE_UNAVAILABLE (retryable), as a real outage would surface.
 * Assertions are on error codes, never on messages.
 */

const P = 'p0';

let dir: string;
let base: ObjectStore;
let faulty: FaultyStore;
let repo: SnapshotRepository;
let rig: StateRig;
let restoreSeq = 0;

beforeEach(async () => {
  rig = await stateRig('outage');
  dir = rig.dir;
  // No retry wrapper: each injected fault reaches the snapshot code as is.
  base = fsStore(dir, { retry: false });
  faulty = new FaultyStore(base);
  repo = repository(faulty, 3);
});
afterEach(async () => {
  await base?.close();
  await rig?.close();
});

const commitAt = (lsn: number) => rig.commitAt(lsn);
const modelAt = (lsn: number) => rig.modelAt(lsn);
const checkpointNow = (r: SnapshotRepository = repo): Promise<CheckpointResult> => rig.checkpointNow(r);

async function pointerBytes(): Promise<{ body: string; etag: string } | undefined> {
  try {
    const { body, etag } = await base.get(layout.latest(P));
    return { body: body.toString(), etag };
  } catch {
    return undefined;
  }
}

/** Snapshot folders the faulted checkpoint wrote into (from the store calls it made). */
function foldersTouched(): string[] {
  const names = new Set<string>();
  for (const c of faulty.calls) {
    const m = /^p0\/([0-9A-Z]{26}_\d+)\//.exec(c.key);
    if (m && (c.op === 'uploadFile' || c.op === 'copy' || c.op === 'put')) names.add(m[1]!);
  }
  return [...names];
}

async function expectRestoresTo(lsn: number, into = join(dir, 'restored', `r${restoreSeq++}`, P)): Promise<void> {
  const r = await repository(base, 3).restore({ partition: P, targetDir: into });
  expect(r.metadata.lsn).toBe(lsn);
  const dump = await dumpState(into);
  expect(dump.lsn).toBe(lsn);
  expect(dump.entries).toEqual(sortedEntries(modelAt(lsn)));
}

/** Two snapshots: LSN 10, then LSN 20 sharing some tables with it (a compaction in between would not). */
async function twoSnapshots(): Promise<CheckpointResult[]> {
  await commitAt(10);
  const a = await checkpointNow();
  await commitAt(20);
  const b = await checkpointNow();
  expect([a.status, b.status]).toEqual(['published', 'published']);
  return [a, b];
}

describe('(a) a checkpoint whose writes fail midway', () => {
  const failures = [
    { name: 'the second table upload', rule: { op: 'uploadFile' as const, skip: 1, mode: 'fail' as const } },
    { name: 'a server-side copy of a shared table', rule: { op: 'copy' as const, mode: 'fail' as const } },
    { name: 'the metadata.json PUT', rule: { op: 'put' as const, key: /\/metadata\.json$/, mode: 'fail' as const } },
    { name: 'the metadata.json PUT, after it landed', rule: { op: 'put' as const, key: /\/metadata\.json$/, mode: 'fail-after' as const } },
    { name: 'the latest.json PUT (before it landed)', rule: { op: 'put' as const, key: 'p0/latest.json', mode: 'fail' as const } },
  ];

  for (const f of failures) {
    it(`${f.name}: throws STORE_UNAVAILABLE, latest.json unchanged, no metadata.json left; the next checkpoint succeeds`, async () => {
      const [, prior] = await twoSnapshots();
      await commitAt(30);
      const before = await pointerBytes();
      faulty.calls.length = 0;
      const fault = faulty.inject(f.rule);
      const err = await expectCode(() => checkpointNow(), 'STORE_UNAVAILABLE');
      expect(err.retryable).toBe(true);
      expect(fault.hits).toBeGreaterThan(0);
      expect(await pointerBytes()).toEqual(before);

      const touched = foldersTouched();
      expect(touched.length).toBe(1);
      expect(touched[0]).toMatch(/_30$/);
      expect(await hasObject(base, `p0/${touched[0]}/metadata.json`)).toBe(false);
      // The store answered the clean-up: the failed folder is gone altogether.
      expect(await folders(base, P)).not.toContain(touched[0]);
      expect((await repo.list(P)).every((s) => s.complete)).toBe(true);

      fault.remove();
      const next = await checkpointNow();
      expect(next.status).toBe('published');
      expect(next.metadata.lsn).toBe(30);
      // The previous snapshot is intact and still the source of server-side copies.
      expect((await readLatest(base, P))!.pointer.retained.map((e) => e.lsn)).toEqual([30, 20, 10]);
      expect(next.metadata.stats.copiedBytes).toBeGreaterThan(0);
      expect((await repo.verify(P, prior!.metadata.snapshotId)).ok).toBe(true);
      await expectRestoresTo(30);
    });
  }

  it('a whole-store outage from midway through the uploads: throws, pointer unchanged, nothing marks the folder complete', async () => {
    await twoSnapshots();
    await commitAt(30);
    const before = await pointerBytes();
    // The outage begins once one file has reached the store and lasts until healed, so
    // even the clean-up fails and the partial folder stays behind.
    const outage = faulty.outage(() => faulty.calls.some((c) => (c.op === 'uploadFile' || c.op === 'copy') && c.outcome === 'ok'));
    await expectCode(() => checkpointNow(), 'STORE_UNAVAILABLE');
    expect(outage.hits).toBeGreaterThan(0);
    faulty.heal();
    expect(await pointerBytes()).toEqual(before);
    const listing = await repo.list(P);
    const partial = listing.filter((s) => s.lsn === 30);
    expect(partial.every((s) => !s.complete && !s.retained)).toBe(true);
    const next = await checkpointNow();
    expect(next.status).toBe('published');
    await expectRestoresTo(30);
  });

  it('transient failures under the retry wrapper are absorbed: the checkpoint publishes', async () => {
    await commitAt(10);
    const retried = repository(withRetry(faulty, { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 }), 3);
    const uploads = faulty.inject({ op: 'uploadFile', mode: 'fail', times: 2 });
    const pointer = faulty.inject({ op: 'put', key: 'p0/latest.json', mode: 'fail', times: 1 });
    const r = await checkpointNow(retried);
    expect(r.status).toBe('published');
    expect([uploads.hits, pointer.hits]).toEqual([2, 1]);
    await expectRestoresTo(10);
  });
});

describe('(b) the latest.json PUT lands, then the caller hears a failure (ambiguous)', () => {
  it('without retries: the checkpoint throws, but its folder is kept and the pointer it landed is valid', async () => {
    await twoSnapshots();
    await commitAt(30);
    faulty.inject({ op: 'put', key: 'p0/latest.json', mode: 'fail-after', times: 1 });
    await expectCode(() => checkpointNow(), 'STORE_UNAVAILABLE');

    const pointer = (await readLatest(base, P))!.pointer;
    expect(pointer.lsn).toBe(30);
    // The published snapshot's folder was not deleted by the failure path.
    const present = await folders(base, P);
    for (const e of pointer.retained) expect(present).toContain(snapshotFolderName(e.snapshotId, e.lsn));
    expect(await hasObject(base, layout.metadata(pointer.path))).toBe(true);
    expect((await repo.verify(P, pointer.snapshotId)).ok).toBe(true);
    await expectRestoresTo(30);

    // And the partition carries on: the next checkpoint builds on the ambiguous one.
    await commitAt(40);
    const next = await checkpointNow();
    expect(next.status).toBe('published');
    expect(next.metadata.stats.copiedBytes).toBeGreaterThan(0);
    expect((await readLatest(base, P))!.pointer.retained.map((e) => e.lsn)).toEqual([40, 30, 20]);
    await expectRestoresTo(40);
  });

  it('when even the read-back after the failure fails, the folder is still kept', async () => {
    await twoSnapshots();
    await commitAt(30);
    faulty.inject({ op: 'put', key: 'p0/latest.json', mode: 'fail-after', times: 1 });
    // The re-read that decides whether the folder is garbage cannot reach the store either.
    faulty.inject({ op: 'get', key: 'p0/latest.json', skip: 1, mode: 'fail' });
    await expectCode(() => checkpointNow(), 'STORE_UNAVAILABLE');
    faulty.heal();
    expect((await readLatest(base, P))!.pointer.lsn).toBe(30);
    await expectRestoresTo(30);
  });

  it('with the retry wrapper: the retried conditional PUT recognises its own write and the checkpoint publishes', async () => {
    await twoSnapshots();
    await commitAt(30);
    const retried = repository(withRetry(faulty, { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 }), 3);
    const fault = faulty.inject({ op: 'put', key: 'p0/latest.json', mode: 'fail-after', times: 1 });
    const r = await checkpointNow(retried);
    expect(fault.hits).toBe(1);
    expect(r.status).toBe('published');
    const pointer = (await readLatest(base, P))!.pointer;
    expect(pointer.snapshotId).toBe(r.metadata.snapshotId);
    expect(pointer.retained.map((e) => e.lsn)).toEqual([30, 20, 10]);
    await expectRestoresTo(30);
  });
});

describe('(c) the runtime through a store outage', () => {
  const RECORDS = 2000;
  const records = Array.from({ length: RECORDS + 500 }, (_, i) => ({ key: `acct${i % 37}`, value: (i * 7) % 11 }));
  /** Running sums per key after every record up to `lsn`. */
  const sums = (lsn: number) => {
    const m = new Map<string, unknown>();
    for (let i = 0; i <= lsn; i++) m.set(records[i]!.key, ((m.get(records[i]!.key) as number | undefined) ?? 0) + records[i]!.value);
    return m;
  };
  const summing: Processor = {
    name: 'sum',
    async apply(record, s) {
      s.put(record.key!, (((await s.get(record.key!)) as number | undefined) ?? 0) + (record.value as number));
    },
  };

  it('keeps applying while snapshots fail, and the next snapshot after the outage publishes', async () => {
    const root = join(dir, 'rt');
    const config = normaliseConfig(
      {
        store: { url: 'file://./store' },
        log: { type: 'embedded', dir: './log' },
        stateDir: './state',
        node: 'rt-node',
        snapshots: { everyRecords: 200, retain: 3, concurrency: 4 },
        runtime: { batchSize: 50 },
      },
      root,
      'test',
    );
    const inner = new FaultyStore(createBackend(config.store));
    // The runtime's usual stack: retries (fast here) over the store that is down.
    const store = withRetry(inner, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 });
    const logs: Array<{ msg: string; status?: string; lsn?: number; err?: { code: string } }> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as (typeof logs)[number]) });
    const realNow = Date.now.bind(Date);
    let skew = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skew);
    const cairn = new Cairn(config, { store, logger });
    try {
      await cairn.log.append(P, records.slice(0, RECORDS));
      const proc = cairn.processor(P, summing);
      await proc.open(); // a fresh node looks for a snapshot first: do that while the store is up

      let down = true;
      const outage = inner.outage(() => down);
      const phase1 = await proc.run({ untilLsn: 999 });
      expect(phase1.appliedLsn).toBe(999);
      expect(phase1.recordsApplied).toBe(1000);
      expect(phase1.snapshots).toEqual([]);
      expect(outage.hits).toBeGreaterThan(0);
      const failed = logs.filter((l) => l.msg === 'snapshot failed; will retry');
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.every((l) => l.err?.code === 'STORE_UNAVAILABLE')).toBe(true);
      expect(await readLatest(inner.inner, P).catch(() => undefined)).toBeUndefined();

      // The store is back, and the failure back-off (5 s) has passed.
      down = false;
      skew += 10_000;
      const logsBefore = logs.length;
      const phase2 = await proc.run({ stopAtEnd: true });
      expect(phase2.appliedLsn).toBe(RECORDS - 1);
      const after = logs.slice(logsBefore).filter((l) => l.msg === 'snapshot finished' || l.msg === 'snapshot failed; will retry');
      expect(after.length).toBeGreaterThan(0);
      expect(after[0]!.msg).toBe('snapshot finished');
      expect(after[0]!.status).toBe('published');
      expect(after.every((l) => l.msg === 'snapshot finished')).toBe(true);
      expect(phase2.snapshots.length).toBeGreaterThan(0);
      expect(phase2.snapshots.every((s) => s.status === 'published' && s.metadata.lsn > 999)).toBe(true);
      const lastLsn = phase2.snapshots[phase2.snapshots.length - 1]!.metadata.lsn;
      await proc.close();

      const local = await dumpState(join(root, 'state', P));
      expect(local.lsn).toBe(RECORDS - 1);
      expect(local.entries).toEqual(sortedEntries(sums(RECORDS - 1)));
      expect((await readLatest(inner.inner, P))!.pointer.lsn).toBe(lastLsn);
      const target = join(root, 'restored', P);
      await repository(inner.inner, 3).restore({ partition: P, targetDir: target });
      const restored = await dumpState(target);
      expect(restored.lsn).toBe(lastLsn);
      expect(restored.entries).toEqual(sortedEntries(sums(lastLsn)));

      // With intact local state a processor starts and applies with the store down: no
      // object-store call is needed to open local state.
      await cairn.log.append(P, records.slice(RECORDS));
      down = true;
      const hitsBefore = outage.hits;
      const again = cairn.processor(P, summing, { everyRecords: 0 });
      const phase3 = await again.run({ stopAtEnd: true });
      expect(phase3.start.source).toBe('local');
      expect(phase3.appliedLsn).toBe(records.length - 1);
      expect(outage.hits).toBe(hitsBefore);
      await again.close();
      const final = await dumpState(join(root, 'state', P));
      expect(final.entries).toEqual(sortedEntries(sums(records.length - 1)));
    } finally {
      clock.mockRestore();
      await cairn.close();
    }
  });
});

describe('(e) a processor that re-bootstraps after a trim gap (regression)', () => {
  /**
   * Found while writing these tests. The processor keeps a sha256 cache keyed by table
   * `name:size` ("LevelDB never reuses a table number"): true within one database, false
   * once recoverFromTrimGap replaces the folder with another node's snapshot, whose file
   * numbering restarts from that snapshot. Here node A's cache holds 000011.ldb from its own
   * lineage; after re-bootstrapping from node B's snapshot its next flush is again
   * 000011.ldb with the same size (fixed-size writes) but other bytes. With the stale cache
   * the snapshot recorded the old sha256: a published latest that fails verify and restore,
   * and every later snapshot copied the mismatch forward.
   */
  const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  const valueOf = (lsn: number, i: number) => createHash('sha512').update(`${lsn}:${i}`).digest('base64');
  const ticks: Processor = {
    name: 'ticks',
    apply(record, s) {
      // Deterministic, fixed-size writes: tables flushed from one record all have one size.
      KEYS.forEach((k, i) => s.put(k, valueOf(record.lsn, i)));
    },
  };

  for (const path of ['while running (recoverFromTrimGap)', 'on reopen after close() (openOrBootstrap)'] as const) {
  it(`${path}: its next snapshot records the sha256 of the bytes it uploads (verifies and restores)`, async () => {
    const root = join(dir, 'gap');
    const config = normaliseConfig(
      { store: { url: 'file://./store' }, log: { type: 'embedded', dir: './log' }, stateDir: './a', node: 'a', snapshots: { everyRecords: 1000, retain: 3, concurrency: 4 } },
      root,
      'test',
    );
    const cairn = new Cairn(config);
    try {
      await cairn.log.append(P, Array.from({ length: 60 }, () => ({ key: 'x', value: 1 })));
      // B opens before anything is published: an independent lineage.
      const b = cairn.processor(P, ticks, { stateDir: join(root, 'b'), node: 'b', everyRecords: 0, batchSize: 100 });
      await b.open();
      const a = cairn.processor(P, ticks, { everyRecords: 0, batchSize: 1 });
      const before: CheckpointResult[] = [];
      await a.run({ untilLsn: 10 });
      before.push(await a.checkpoint());
      for (let lsn = 11; lsn <= 14; lsn++) {
        await a.run({ untilLsn: lsn });
        before.push(await a.checkpoint());
      }
      await b.run({ untilLsn: 40 });
      expect((await b.checkpoint()).status).toBe('published');
      await b.close();
      await cairn.log.trim(P, 41);
      if (path.startsWith('on reopen')) await a.close();

      // A needs LSN 15, the log starts at 41: it restores B's snapshot and carries on.
      const resumed = await a.run({ untilLsn: 41 });
      if (path.startsWith('on reopen')) expect(resumed.start.source).toBe('bootstrap');
      const after = await a.checkpoint();
      await a.close();
      expect(after.status).toBe('published');
      const report = await cairn.snapshots.verify(P, after.metadata.snapshotId);
      expect(report.problems).toEqual([]);
      const target = join(root, 'restored', P);
      const restored = await cairn.snapshots.restore({ partition: P, targetDir: target });
      expect(restored.skipped).toEqual([]);
      expect(restored.metadata.lsn).toBe(41);
      expect((await dumpState(target)).entries).toEqual(KEYS.map((k, i) => [k, valueOf(41, i)]));

      // The scenario did reach a table that repeats an old name and size with other bytes.
      const old = new Map(before.flatMap((r) => r.metadata.files).map((f) => [`${f.name}:${f.size}`, f.sha256]));
      const lookalikes = after.metadata.files.filter((f) => old.has(`${f.name}:${f.size}`) && old.get(`${f.name}:${f.size}`) !== f.sha256);
      expect(lookalikes.length).toBeGreaterThan(0);
    } finally {
      await cairn.close();
    }
  });
  }
});

describe('(d) restore with damaged snapshots', () => {
  /** Snapshots at LSN 10, 20, 30 (retain 3); returns their folder paths, newest first. */
  async function threeSnapshots(): Promise<string[]> {
    const paths: string[] = [];
    for (const lsn of [10, 20, 30]) {
      await commitAt(lsn);
      const r = await checkpointNow();
      expect(r.status).toBe('published');
      paths.unshift(layout.snapshotPath(P, r.metadata.snapshotId, lsn));
    }
    return paths;
  }

  async function restoreWithFallbacks(targetDir = join(dir, 'target', P), snapshotId?: string) {
    const fallbacks: Array<{ path: string; code: string }> = [];
    const result = await repo.restore({
      partition: P,
      targetDir,
      ...(snapshotId ? { snapshotId } : {}),
      onFallback: (s) => fallbacks.push({ path: s.path, code: s.code }),
    });
    expect(result.skipped.map((s) => ({ path: s.path, code: s.code }))).toEqual(fallbacks);
    const dump = await dumpState(targetDir);
    expect(dump.lsn).toBe(result.metadata.lsn);
    expect(dump.entries).toEqual(sortedEntries(modelAt(result.metadata.lsn)));
    expect(await restoreLeftovers(join(targetDir, '..'))).toEqual([]);
    return { result, fallbacks };
  }

  const damages: Array<{ name: string; code: string; damage: (path: string) => Promise<void> }> = [
    { name: 'metadata.json missing', code: 'NOT_FOUND', damage: (p) => base.delete([layout.metadata(p)]) },
    { name: 'metadata.json not JSON', code: 'CORRUPT', damage: async (p) => void (await base.put(layout.metadata(p), '{"format": 1, "partition": "p0", ')) },
    {
      name: 'metadata.json valid JSON with a bad field',
      code: 'CORRUPT',
      damage: async (p) => {
        const meta = JSON.parse((await base.get(layout.metadata(p))).body.toString()) as Record<string, unknown>;
        await base.put(layout.metadata(p), JSON.stringify({ ...meta, files: 'none' }));
      },
    },
    {
      name: 'metadata.json that describes another snapshot',
      code: 'CORRUPT',
      damage: async (p) => {
        const folder = (await folders(base, P)).find((f) => !p.endsWith(f))!;
        await base.put(layout.metadata(p), (await base.get(`${P}/${folder}/metadata.json`)).body);
      },
    },
    {
      name: 'a table with flipped bytes',
      code: 'CORRUPT',
      damage: async (p) => {
        const table = (await collectKeys(base, `${p}/`)).find((k) => /\.ldb$/.test(k))!;
        const body = Buffer.from((await base.get(table)).body);
        const at = body.length >> 1;
        body[at] = body[at]! ^ 0xff;
        await base.put(table, body);
      },
    },
    {
      name: 'a truncated table',
      code: 'CORRUPT',
      damage: async (p) => {
        const table = (await collectKeys(base, `${p}/`)).find((k) => /\.ldb$/.test(k))!;
        await base.put(table, (await base.get(table)).body.subarray(0, 100));
      },
    },
    {
      name: 'the MANIFEST missing',
      code: 'NOT_FOUND',
      damage: async (p) => base.delete([(await collectKeys(base, `${p}/`)).find((k) => /MANIFEST-/.test(k))!]),
    },
  ];

  for (const d of damages) {
    it(`latest snapshot with ${d.name}: falls back to the previous one and reports the skip (${d.code})`, async () => {
      const [latest] = await threeSnapshots();
      await d.damage(latest!);
      const { result, fallbacks } = await restoreWithFallbacks();
      expect(result.metadata.lsn).toBe(20);
      expect(fallbacks).toEqual([{ path: latest, code: d.code }]);
    });
  }

  it('bytes corrupted in transit (download) are caught by sha256 and the next snapshot is used', async () => {
    const [latest] = await threeSnapshots();
    faulty.inject({ op: 'downloadFile', key: (k) => k.startsWith(`${latest}/`) && k.endsWith('.ldb'), mode: 'corrupt', times: 1 });
    const { result, fallbacks } = await restoreWithFallbacks();
    expect(result.metadata.lsn).toBe(20);
    expect(fallbacks).toEqual([{ path: latest, code: 'CORRUPT' }]);
  });

  it('two damaged snapshots: falls back twice, to the oldest retained one', async () => {
    const [latest, middle] = await threeSnapshots();
    await base.delete([layout.metadata(latest!)]);
    await base.put(layout.metadata(middle!), 'not json');
    const { result, fallbacks } = await restoreWithFallbacks();
    expect(result.metadata.lsn).toBe(10);
    expect(fallbacks).toEqual([
      { path: latest, code: 'NOT_FOUND' },
      { path: middle, code: 'CORRUPT' },
    ]);
  });

  it('every candidate damaged: NO_SNAPSHOT listing each skip, and the existing target is left as it was', async () => {
    const paths = await threeSnapshots();
    for (const p of paths) await base.put(layout.metadata(p), '{');
    // A state is already where the restore would go; a failed restore must not touch it.
    const target = join(dir, 'target', P);
    const existing = await PartitionState.open(target, { partition: P });
    await existing.commit(new Map([['mine', 1]]), 5);
    await existing.close();
    const fallbacks: string[] = [];
    const err = await expectCode(() => repo.restore({ partition: P, targetDir: target, onFallback: (s) => fallbacks.push(s.path) }), 'NO_SNAPSHOT');
    const skipped = (err.details?.skipped ?? []) as Array<{ path: string; code: string }>;
    expect(skipped.map((s) => [s.path, s.code])).toEqual(paths.map((p) => [p, 'CORRUPT']));
    expect(fallbacks).toEqual(paths);
    expect(await dumpState(target)).toEqual({ lsn: 5, entries: [['mine', 1]] });
    expect(await restoreLeftovers(join(dir, 'target'))).toEqual([]);
  });

  it('an explicit snapshot id that is damaged fails without falling back; a healthy explicit id restores', async () => {
    const [latest, middle] = await threeSnapshots();
    await base.put(layout.metadata(latest!), 'not json');
    const latestId = latest!.slice(P.length + 1).split('_')[0]!;
    const target = join(dir, 'explicit', P);
    const fallbacks: string[] = [];
    const err = await expectCode(() => repo.restore({ partition: P, targetDir: target, snapshotId: latestId, onFallback: (s) => fallbacks.push(s.path) }), 'NO_SNAPSHOT');
    expect(((err.details?.skipped ?? []) as Array<{ code: string }>).map((s) => s.code)).toEqual(['CORRUPT']);
    expect(fallbacks).toEqual([latest]);
    expect(existsSync(target)).toBe(false);
    expect(await restoreLeftovers(join(dir, 'explicit'))).toEqual([]);

    const middleId = middle!.slice(P.length + 1).split('_')[0]!;
    const { result, fallbacks: none } = await restoreWithFallbacks(target, middleId);
    expect(result.metadata.lsn).toBe(20);
    expect(none).toEqual([]);
  });

  it('a store outage during restore is not damage: it fails with STORE_UNAVAILABLE and does not fall back', async () => {
    await threeSnapshots();
    faulty.inject({ op: 'downloadFile', mode: 'fail', skip: 1 });
    const fallbacks: string[] = [];
    const target = join(dir, 'target', P);
    await expectCode(() => repo.restore({ partition: P, targetDir: target, onFallback: (s) => fallbacks.push(s.path) }), 'STORE_UNAVAILABLE');
    expect(fallbacks).toEqual([]);
    expect(existsSync(target)).toBe(false);
    expect(await restoreLeftovers(join(dir, 'target'))).toEqual([]);
  });

  it('a corrupt latest.json fails the restore with CORRUPT (there is no list of candidates to fall back on)', async () => {
    await threeSnapshots();
    await base.put(layout.latest(P), '{"format":1');
    await expectCode(() => repo.restore({ partition: P, targetDir: join(dir, 't', P) }), 'CORRUPT');
  });

  it('no snapshot at all: NO_SNAPSHOT', async () => {
    await expectCode(() => repo.restore({ partition: P, targetDir: join(dir, 't', P) }), 'NO_SNAPSHOT');
  });

  it('a checkpoint after the latest metadata.json was damaged still publishes, uploading every file', async () => {
    const [latest] = await threeSnapshots();
    await base.put(layout.metadata(latest!), 'garbage');
    await commitAt(40);
    const r = await checkpointNow();
    expect(r.status).toBe('published');
    expect(r.metadata.stats.copiedBytes).toBe(0);
    await expectRestoresTo(40);
  });
});

async function collectKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}
