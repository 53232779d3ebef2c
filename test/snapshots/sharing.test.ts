import { join } from 'node:path';
import { decodeTime, monotonicFactory } from 'ulid';
import { afterEach, describe, expect, it, vi } from 'vitest';
import bank from '../../examples/bank/processor.js';
import feesV2, { isPremium } from '../../examples/bank/fees-v2.js';
import { bankEvents } from '../../src/cli/demo-events.js';
import { normaliseConfig } from '../../src/core/config.js';
import { createFork } from '../../src/forks/fork.js';
import { dropFork } from '../../src/forks/fork-admin.js';
import { layout } from '../../src/snapshots/layout.js';
import { pruneSnapshots } from '../../src/snapshots/prune.js';
import { SnapshotRepository, type CheckpointResult } from '../../src/snapshots/repository.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { DELETE } from '../../src/state/types.js';
import { createStore } from '../../src/store/index.js';
import { withRetry } from '../../src/store/retry.js';
import type { ObjectStore } from '../../src/store/types.js';
import { bankModel } from '../helpers/bank-model.js';
import { churnRig as newChurnRig, loadRig, loadedKey, noise, type ChurnRig } from '../helpers/churn-rig.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { FaultyStore, type Gate } from '../helpers/faulty-store.js';
import { readState, releasedAfterEach, writeConfig } from '../helpers/runtime-harness.js';
import { s3StoreConfig, s3TestConfig, uniqueS3Prefix } from '../helpers/s3.js';
import { expectCode } from '../helpers/fixtures.js';
import { dumpState, hasObject, sortedEntries } from '../helpers/snapshot-fixtures.js';
import { listAll, missingFiles, rawMetadata, rawPointer, readableRoots, referencedBy, snapshotObjects, unreferencedObjects } from '../helpers/snapshot-references.js';

/**
 * snapshots.sharing "shared" end to end on MinIO: what a shared checkpoint references and
 * what it costs next to "copy"; restores, verify, forks (create, replay, diff), prune and the
 * collector on top of it; switching modes on a live partition; the guard that keeps a shared
 * checkpoint from publishing once the snapshot it took references from has gone
 * (publishPointer's requireListed); a checkpoint that lost the answer to its publish and is
 * then overtaken; and `cairn snapshots gc` (dry run, no latest.json, the in-flight grace).
 *
 * Every check of what is in the store goes through helpers/snapshot-references.ts, which
 * reads the documents as plain JSON with none of the snapshot code under test.
 */

/** Snapshot ids minted this far in the past (0: now): how a test makes folders "older than the grace". */
const clock = vi.hoisted(() => ({ offsetMs: 0 }));
vi.mock('../../src/core/ids.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/core/ids.js')>();
  // Ids are monotonic per factory: past ones need a factory of their own.
  const past = (await import('ulid')).monotonicFactory();
  return { ...original, newSnapshotId: (now: number = Date.now()) => (clock.offsetMs === 0 ? original.newSnapshotId(now) : past(now + clock.offsetMs)) };
});

const HOUR = 3_600_000;
const { dirs, closers } = releasedAfterEach();
afterEach(() => {
  clock.offsetMs = 0;
});

function s3Store(label: string): ObjectStore {
  const store = createStore(s3StoreConfig(uniqueS3Prefix(label)));
  closers.push(() => store.close());
  return store;
}

const repo = (store: ObjectStore, sharing: 'copy' | 'shared', retain = 3, evictionGraceMs = 0) => new SnapshotRepository(store, { retain, concurrency: 8, evictionGraceMs, sharing });

/** A churn rig (helpers/churn-rig.ts), closed and removed after the test. */
async function churnRig(partition: string, dir?: string): Promise<ChurnRig> {
  const rig = await newChurnRig(partition, dir ? { dir } : {});
  dirs.push(rig.root);
  closers.push(() => rig.close());
  return rig;
}

const load = (rig: ChurnRig) => loadRig(rig, 4000);
const key = loadedKey;

async function restoreInto(r: SnapshotRepository, partition: string, snapshotId?: string): Promise<{ lsn: number; entries: Array<[string, unknown]> }> {
  const dir = join(tempDir('cairn-sharing-restore-'), partition);
  dirs.push(join(dir, '..'));
  const restored = await r.restore({ partition, targetDir: dir, ...(snapshotId ? { snapshotId } : {}) });
  expect(restored.skipped).toEqual([]);
  return dumpState(dir);
}

/** Every snapshot `partition` lists, restored, against the model at its LSN. */
async function expectAllRestorable(r: SnapshotRepository, partition: string, at: Map<number, Map<string, unknown>>): Promise<void> {
  const pointer = (await rawPointer(r.store, partition))!;
  expect(await missingFiles(r.store, await readableRoots(r.store, partition))).toEqual([]);
  for (const e of [...pointer.retained, ...(pointer.evicted ?? [])]) {
    const dump = await restoreInto(r, partition, e.snapshotId);
    expect(dump.lsn).toBe(e.lsn);
    expect(dump.entries, `${partition}@${e.lsn}`).toEqual(sortedEntries(at.get(e.lsn)!));
  }
}

const bytesUnder = async (store: ObjectStore, prefix: string) => [...(await snapshotObjects(store, prefix)).values()].reduce((n, s) => n + s, 0);

describe('snapshots.sharing "shared" on MinIO', () => {
  it('five checkpoints of a small churn reference unchanged tables where they are; far fewer bytes than copy; restore, verify, fork, prune, gc', async () => {
    const store = s3Store('sharing-a');
    const shared = repo(store, 'shared');
    const copy = repo(store, 'copy');
    const ps = await churnRig('ps');
    const pc = await churnRig('pc');
    await load(ps);
    await load(pc);
    const results: { shared: CheckpointResult[]; copy: CheckpointResult[] } = { shared: [], copy: [] };
    for (let round = 0; round < 5; round++) {
      await ps.churn(round);
      await pc.churn(round);
      results.shared.push(await ps.checkpoint(shared));
      results.copy.push(await pc.checkpoint(copy));
    }
    expect(results.shared.map((r) => r.status)).toEqual(Array(5).fill('published'));
    for (const [i, r] of results.shared.entries()) {
      const meta = r.metadata;
      const own = `${layout.snapshotPath('ps', meta.snapshotId, meta.lsn)}/`;
      const total = meta.files.reduce((n, f) => n + f.size, 0);
      expect(meta.stats.copiedBytes).toBe(0);
      if (i === 0) {
        expect(meta.stats.uploadedBytes).toBe(total);
        continue;
      }
      // Later snapshots: most bytes referenced in older folders, a small table uploaded.
      const elsewhere = meta.files.filter((f) => !f.key.startsWith(own));
      expect(elsewhere.length).toBeGreaterThan(0);
      for (const f of elsewhere) expect(f.key.startsWith('ps/')).toBe(true);
      expect(meta.stats.referencedBytes).toBe(elsewhere.reduce((n, f) => n + f.size, 0));
      expect(meta.stats.referencedBytes).toBeGreaterThan(0);
      expect(meta.stats.uploadedBytes).toBeLessThan(total / 4);
    }
    // The same writes in copy mode: every snapshot self-contained, unchanged tables copied.
    for (const r of results.copy.slice(1)) {
      expect(r.metadata.stats.referencedBytes).toBe(0);
      expect(r.metadata.stats.copiedBytes).toBeGreaterThan(0);
      expect(r.metadata.files.every((f) => f.key.startsWith(`${layout.snapshotPath('pc', r.metadata.snapshotId, r.metadata.lsn)}/`))).toBe(true);
    }
    const sharedBytes = await bytesUnder(store, 'ps');
    const copyBytes = await bytesUnder(store, 'pc');
    expect(sharedBytes * 2).toBeLessThan(copyBytes);

    // Restore and verify every retained snapshot.
    await expectAllRestorable(shared, 'ps', ps.at);
    for (const e of (await rawPointer(store, 'ps'))!.retained) {
      const report = await shared.verify('ps', e.snapshotId);
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
    }

    // A fork of the oldest retained snapshot; its own checkpoint references the parent's tables.
    const pointer = (await rawPointer(store, 'ps'))!;
    const oldest = pointer.retained[pointer.retained.length - 1]!;
    await createFork(store, { from: 'ps', at: { kind: 'snapshot', snapshotId: oldest.snapshotId }, name: 'psf', node: 'n1' });
    const forkDir = join(tempDir('cairn-sharing-fork-'), 'psf');
    dirs.push(join(forkDir, '..'));
    await shared.restore({ partition: 'psf', targetDir: forkDir });
    const fork = await churnRig('psf', forkDir);
    fork.model = new Map(ps.at.get(oldest.lsn)!);
    fork.at.set(oldest.lsn, new Map(fork.model));
    await fork.commit(new Map([[`z${5}`, { fork: true }], [`z${6}`, { fork: true }]]));
    const forkResult = await fork.checkpoint(shared);
    expect(forkResult.status).toBe('published');
    expect(forkResult.metadata.files.some((f) => f.key.startsWith('ps/'))).toBe(true);
    expect(forkResult.metadata.stats.referencedBytes).toBeGreaterThan(0);
    await expectAllRestorable(shared, 'psf', fork.at);

    // The parent moves on and is pruned to one snapshot; the pinned one and everything the fork references stay.
    for (let round = 5; round < 8; round++) {
      await ps.churn(round);
      await ps.checkpoint(shared);
    }
    const pruned = await pruneSnapshots(store, 'ps', 1);
    expect(pruned.deleted.length).toBeGreaterThan(0);
    expect(pruned.deleted).not.toContain(oldest.path);
    expect(pruned.kept.find((k) => k.path === oldest.path)?.why).toMatch(/pinned/);
    await expectAllRestorable(shared, 'ps', ps.at);
    await expectAllRestorable(shared, 'psf', fork.at);
    expect((await shared.verify('psf')).ok).toBe(true);

    // The collector with no grace: safe for both, and complete.
    await shared.collectGarbage('ps', { graceMs: 0 });
    await shared.collectGarbage('psf', { graceMs: 0 });
    expect(await unreferencedObjects(store, 'ps')).toEqual([]);
    expect(await unreferencedObjects(store, 'psf')).toEqual([]);
    await expectAllRestorable(shared, 'ps', ps.at);
    await expectAllRestorable(shared, 'psf', fork.at);

    // Dropping the fork releases its pin: prune may then take the snapshot it pinned (by
    // reference: the tables the latest shares stay), and nothing is left for the collector.
    await fork.state.close();
    await dropFork(store, 'psf');
    const again = await pruneSnapshots(store, 'ps', 1);
    expect(again.deleted).toContain(oldest.path);
    expect(await missingFiles(store, await readableRoots(store, 'ps'))).toEqual([]);
    await shared.collectGarbage('ps', { graceMs: 0 });
    expect(await unreferencedObjects(store, 'ps')).toEqual([]);
    await expectAllRestorable(shared, 'ps', ps.at);
    expect(await bytesUnder(store, 'ps')).toBeLessThan(copyBytes);
  });

  it('a worker in shared mode: fork create, what-if replay, diff, prune and gc give the models', async () => {
    const dir = tempDir('cairn-sharing-bank-');
    dirs.push(dir);
    const s3 = s3TestConfig();
    const config = normaliseConfig(
      {
        store: { url: `s3://${s3.bucket}/${uniqueS3Prefix('sharing-bank')}`, endpoint: s3.endpoint, region: s3.region, forcePathStyle: true },
        snapshots: { everyRecords: 400, retain: 3, concurrency: 8, evictionGraceMs: 0, sharing: 'shared' },
        runtime: { batchSize: 100 },
      },
      dir,
      'test',
    );
    const cairn = new Cairn(config);
    closers.push(() => cairn.close());
    const events = bankEvents(4000, 31, 3000);
    await cairn.log.append('p0', events);
    const p0 = cairn.processor('p0', bank);
    await p0.run({ untilLsn: 1999, checkpointOnExit: true });
    const forkPoint = (await cairn.snapshots.metadata('p0')).snapshotId;
    await cairn.forks.create(`p0@${forkPoint}`, 'what-if');
    await p0.run({ stopAtEnd: true, checkpointOnExit: true });
    await p0.close();
    expect((await cairn.snapshots.metadata('p0')).lsn).toBe(3999);
    const restored = async (partition: string) => {
      const target = join(tempDir('cairn-sharing-bank-restore-'), partition);
      dirs.push(join(target, '..'));
      await cairn.snapshots.restore({ partition, targetDir: target });
      return readState(target);
    };

    // The fork's first snapshot is the parent's files; the parent moved on, and is pruned to
    // one snapshot and collected: the pinned one, and all it references, stay.
    expect((await cairn.snapshots.metadata('what-if')).files.every((f) => f.key.startsWith('p0/'))).toBe(true);
    const pruned = await cairn.forks.prune('p0', 1);
    expect(pruned.kept.some((k) => k.path.includes(forkPoint))).toBe(true);
    await cairn.snapshots.collectGarbage('p0', { graceMs: 0 });
    expect(await unreferencedObjects(cairn.store, 'p0')).toEqual([]);
    expect((await restored('what-if')).entries).toEqual(bankModel(events, 1999));

    const replay = await cairn.forks.replay('what-if', feesV2, { checkpointOnExit: true });
    expect(replay.appliedLsn).toBe(3999);

    const v1 = bankModel(events);
    const v2 = bankModel(events, events.length - 1, (account, i) => (i > 1999 && isPremium(account) ? 0 : 25));
    const differing = [...v1.keys()].filter((k) => JSON.stringify(v1.get(k)) !== JSON.stringify(v2.get(k)));
    expect(differing.length).toBeGreaterThan(5);
    const d = await cairn.forks.diff('p0', 'what-if');
    expect(d).toMatchObject({ added: 0, removed: 0, changed: differing.length, unchanged: v1.size - differing.length });

    await cairn.forks.prune('p0', 1);
    await cairn.forks.prune('what-if', 1);
    await cairn.snapshots.collectGarbage('p0', { graceMs: 0 });
    await cairn.snapshots.collectGarbage('what-if', { graceMs: 0 });
    expect(await unreferencedObjects(cairn.store, 'what-if')).toEqual([]);
    expect(await unreferencedObjects(cairn.store, 'p0')).toEqual([]);
    expect(await missingFiles(cairn.store, [...(await readableRoots(cairn.store, 'p0')), ...(await readableRoots(cairn.store, 'what-if'))])).toEqual([]);
    expect((await cairn.snapshots.verify('what-if')).ok).toBe(true);
    expect((await cairn.snapshots.verify('p0')).ok).toBe(true);

    // Fresh restores of both give the models.
    expect((await restored('p0')).entries).toEqual(v1);
    expect((await restored('what-if')).entries).toEqual(v2);

    await cairn.forks.drop('what-if');
    await cairn.snapshots.collectGarbage('p0', { graceMs: 0 });
    expect(await unreferencedObjects(cairn.store, 'p0')).toEqual([]);
    expect((await restored('p0')).entries).toEqual(v1);
  });

  it('copy -> shared -> copy on one partition with retain 2 and no grace: every retained snapshot stays restorable', async () => {
    const store = s3Store('sharing-b');
    const rig = await churnRig('pm');
    await load(rig);
    const modes: Array<'copy' | 'shared'> = ['copy', 'copy', 'shared', 'shared', 'shared', 'copy', 'copy', 'shared', 'shared', 'copy'];
    for (const [i, mode] of modes.entries()) {
      await rig.churn(i);
      if (i % 4 === 3) {
        // Now and then enough to overflow the memtable and compact: tables change under the references.
        await rig.commit(new Map(Array.from({ length: 400 }, (_, j) => [key((i * 400 + j) % 4000), { i, j, pad: noise(`over ${i}/${j}`, 1000) }] as const)));
      }
      const r = repo(store, mode, 2, 0);
      const result = await rig.checkpoint(r);
      expect(result.status).toBe('published');
      const own = `${layout.snapshotPath('pm', result.metadata.snapshotId, result.metadata.lsn)}/`;
      if (mode === 'copy') expect(result.metadata.files.every((f) => f.key.startsWith(own))).toBe(true);
      else if (i > 0) expect(result.metadata.stats.referencedBytes).toBeGreaterThan(0);
      expect((await rawPointer(store, 'pm'))!.retained.length).toBe(Math.min(i + 1, 2));
      await expectAllRestorable(r, 'pm', rig.at);
    }
    const r = repo(store, 'copy', 2, 0);
    await r.collectGarbage('pm', { graceMs: 0 });
    expect(await unreferencedObjects(store, 'pm')).toEqual([]);
    await expectAllRestorable(r, 'pm', rig.at);
  });

  describe('a shared checkpoint whose source snapshot is evicted by a concurrent writer before it publishes', () => {
    /**
     * Writer A (the original state) captures at LSN 500 and references K's tables; its PUT of
     * latest.json waits at a gate. Writer B (a node restored from K) publishes at 300 and 400
     * with retain 2 and no grace: K leaves the pointer and is swept. A's publish must then
     * fail with CONFLICT (not superseded: 500 is above 400), and its clean-up must delete
     * nothing B's snapshots need.
     */
    async function race(options: { bRewrites: boolean }) {
      const store = s3Store('sharing-c');
      const a = await churnRig('pr');
      await load(a);
      await a.churn(0, 100);
      const k = await a.checkpoint(repo(store, 'shared', 2, 0));
      const bDir = join(tempDir('cairn-sharing-b-'), 'pr');
      dirs.push(join(bDir, '..'));
      await repo(store, 'shared').restore({ partition: 'pr', targetDir: bDir });
      const b = await churnRig('pr', bDir);
      b.model = new Map(a.model);
      expect(b.lsn).toBe(100);

      const faulty = new FaultyStore(store);
      const gate: Gate = faulty.gate('put', layout.latest('pr'));
      await a.churn(1, 500);
      const pending = a.checkpoint(repo(withRetry(faulty, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 }), 'shared', 2, 0)).catch((e: unknown) => e);
      await gate.arrived;
      // A's folder is complete and references K's tables.
      const aFolder = (await store.listFolders('pr/')).find((f) => f.endsWith('_500'))!;
      const aPath = `pr/${aFolder}`;
      const aFiles = (await rawMetadata(store, aPath)).files;
      const aReferences = aFiles.filter((f) => !f.key.startsWith(`${aPath}/`)).map((f) => f.key);
      expect(aReferences.length).toBeGreaterThan(0);
      expect(aReferences.every((key) => k.metadata.files.some((f) => f.key === key))).toBe(true);

      const bRepo = repo(store, 'shared', 2, 0);
      for (const lsn of [300, 400]) {
        if (options.bRewrites && lsn === 300) {
          // Every loaded key deleted and compacted away: B keeps none of K's tables.
          await b.commit(new Map(Array.from({ length: 4000 }, (_, i) => [key(i), DELETE] as const)), 299);
          await b.state.compactAll();
        }
        await b.churn(lsn, lsn);
        expect((await b.checkpoint(bRepo)).status).toBe('published');
      }
      const kPath = layout.snapshotPath('pr', k.metadata.snapshotId, k.metadata.lsn);
      const pointer = (await rawPointer(store, 'pr'))!;
      expect([...pointer.retained, ...(pointer.evicted ?? [])].map((e) => e.path)).not.toContain(kPath);
      const needed = await referencedBy(store, await readableRoots(store, 'pr'));

      gate.release();
      const err = await pending;
      expect((err as { code?: string }).code).toBe('CONFLICT');
      // Not published, its own folder cleaned; B's pointer and snapshots untouched and whole.
      const after = (await rawPointer(store, 'pr'))!;
      expect(after.lsn).toBe(400);
      expect(after.retained.map((e) => e.lsn)).toEqual([400, 300]);
      expect([...(await listAll(store, `${aPath}/`)).keys()]).toEqual([]);
      const present = await listAll(store, 'pr/');
      for (const key of needed) expect(present.has(key), `${key} needed by B's snapshots`).toBe(true);
      expect(await missingFiles(store, await readableRoots(store, 'pr'))).toEqual([]);
      await expectAllRestorable(bRepo, 'pr', b.at);
      // What A referenced and B still shares is there; what nobody needs may go.
      return { aReferences, needed, store };
    }

    it('B shares K\'s tables: CONFLICT, and every table A referenced that B shares is still there', async () => {
      const { aReferences, needed } = await race({ bRewrites: false });
      expect(aReferences.filter((key) => needed.has(key)).length).toBeGreaterThan(0);
    });

    it('B rewrote its state: K\'s tables are swept, and A, which references them, is refused with CONFLICT', async () => {
      const { aReferences, needed, store } = await race({ bRewrites: true });
      expect(aReferences.filter((key) => needed.has(key))).toEqual([]);
      // Published, A would have pointed at deleted tables.
      for (const key of aReferences) expect(await hasObject(store, key)).toBe(false);
    });
  });

  it('a worker that lost the answer to its publish, overtaken and evicted by another, deletes none of the tables the other shares', async () => {
    // A's PUT of latest.json lands but A hears an error; its retry waits at a gate while B
    // publishes twice on top (retain 2, no grace), referencing A's tables and evicting A's
    // snapshot. A then finds itself below the pointer ("superseded"): its folder may only lose
    // what nothing readable references.
    const store = s3Store('sharing-e');
    const rig = await churnRig('pl');
    await load(rig);
    await rig.churn(0, 100);
    await rig.checkpoint(repo(store, 'shared', 2, 0));
    const faulty = new FaultyStore(store);
    let retryGate: Gate | undefined;
    let landed!: () => void;
    const firstPut = new Promise<void>((resolve) => (landed = resolve));
    faulty.inject({
      op: 'put',
      key: layout.latest('pl'),
      mode: 'fail-after',
      times: 1,
      when: () => {
        retryGate ??= faulty.gate('put', layout.latest('pl'));
        landed();
        return true;
      },
    });
    await rig.churn(1, 200);
    const a = rig.checkpoint(repo(withRetry(faulty, { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 }), 'shared', 2, 0));
    await firstPut;
    await retryGate!.arrived;
    expect((await rawPointer(store, 'pl'))!.lsn).toBe(200); // A's publish landed
    const b = repo(store, 'shared', 2, 0);
    for (const lsn of [300, 400]) {
      await rig.churn(lsn, lsn);
      const r = await rig.checkpoint(b);
      expect(r.status).toBe('published');
      expect(r.metadata.stats.referencedBytes).toBeGreaterThan(0);
    }
    const pointer = (await rawPointer(store, 'pl'))!;
    expect(pointer.retained.map((e) => e.lsn)).toEqual([400, 300]);
    const aPath = (await store.listFolders('pl/')).map((f) => `pl/${f}`).find((p) => p.endsWith('_200'))!;
    const needed = await referencedBy(store, await readableRoots(store, 'pl'));
    const sharedFromA = [...needed].filter((k) => k.startsWith(`${aPath}/`));
    expect(sharedFromA.length).toBeGreaterThan(0);

    retryGate!.release();
    const result = await a;
    expect(result.status).toBe('superseded');
    expect(await missingFiles(store, await readableRoots(store, 'pl'))).toEqual([]);
    expect([...(await listAll(store, `${aPath}/`)).keys()].sort()).toEqual(sharedFromA.sort());
    await expectAllRestorable(b, 'pl', rig.at);
  });

  it('a published checkpoint whose sweep of evicted snapshots fails, after another writer evicted it in turn, deletes none of the tables the other shares', async () => {
    // A publishes S200 (retain 2: S100 is due) and its first delete of S100 waits at a gate;
    // B publishes twice on top, referencing S200's tables and evicting S200. Then A's delete
    // fails: whatever A reports, its clean-up may only take what nothing readable references.
    const store = s3Store('sharing-f');
    const rig = await churnRig('pd');
    await load(rig);
    const b = repo(store, 'shared', 2, 0);
    await rig.churn(0, 100);
    await rig.checkpoint(b);
    await rig.churn(1, 150);
    await rig.checkpoint(b);
    const faulty = new FaultyStore(store);
    const gate = faulty.gate('delete', /_100\/metadata\.json$/);
    await rig.churn(2, 200);
    const a = rig.checkpoint(repo(faulty, 'shared', 2, 0)).then(
      (r) => r.status,
      (e: unknown) => (e as { code?: string }).code,
    );
    await gate.arrived;
    expect((await rawPointer(store, 'pd'))!.lsn).toBe(200);
    for (const lsn of [300, 400]) {
      await rig.churn(lsn, lsn);
      expect((await rig.checkpoint(b)).status).toBe('published');
    }
    const aPath = (await store.listFolders('pd/')).map((f) => `pd/${f}`).find((p) => p.endsWith('_200'))!;
    const needed = await referencedBy(store, await readableRoots(store, 'pd'));
    const sharedFromA = [...needed].filter((k) => k.startsWith(`${aPath}/`));
    expect(sharedFromA.length).toBeGreaterThan(0);
    faulty.inject({ op: 'delete', mode: 'fail', times: 1 });
    gate.release();
    // Published, though the failed delete is reported (the checkpoint did not finish its work).
    expect(['published', 'STORE_UNAVAILABLE']).toContain(await a);
    expect(await missingFiles(store, await readableRoots(store, 'pd'))).toEqual([]);
    for (const k of sharedFromA) expect(await hasObject(store, k), k).toBe(true);
    await expectAllRestorable(b, 'pd', rig.at);
    await b.collectGarbage('pd', { graceMs: 0 });
    expect(await unreferencedObjects(store, 'pd')).toEqual([]);
    await expectAllRestorable(b, 'pd', rig.at);
  });

  describe('cairn snapshots gc (CLI)', () => {
    it('--dry-run lists and deletes nothing; no latest.json: NO_SNAPSHOT, nothing deleted; folders younger than the grace untouched', async () => {
      const s3 = s3TestConfig();
      const prefix = uniqueS3Prefix('sharing-gc');
      const cwd = tempDir('cairn-sharing-gc-');
      dirs.push(cwd);
      writeConfig(cwd, {
        store: { url: `s3://${s3.bucket}/${prefix}`, endpoint: s3.endpoint, region: s3.region, forcePathStyle: true },
        snapshots: { retain: 2, evictionGraceMs: 0, sharing: 'shared' },
      });
      const store = createStore(s3StoreConfig(prefix));
      closers.push(() => store.close());
      const r = repo(store, 'shared', 2, 0);
      const rig = await churnRig('pg');
      await load(rig);
      // Two hours ago (by their ids): checkpoints whose evicted folders keep shared tables,
      // some of which nothing needs any more after the compaction below.
      clock.offsetMs = -2 * HOUR;
      for (let round = 0; round < 5; round++) {
        await rig.churn(round);
        if (round === 3) await rig.state.compactAll();
        expect((await rig.checkpoint(r)).status).toBe('published');
      }
      // Now: more of the same, whose leftovers are younger than the grace.
      clock.offsetMs = 0;
      for (let round = 5; round < 10; round++) {
        await rig.churn(round);
        if (round === 7) await rig.state.compactAll();
        expect((await rig.checkpoint(r)).status).toBe('published');
      }
      // Residue of interrupted uploads: one from two hours ago, one in flight now.
      const ulid = monotonicFactory();
      const oldFolder = `pg/${ulid(Date.now() - 2 * HOUR)}_9000`;
      const youngFolder = `pg/${ulid(Date.now())}_9001`;
      await store.put(`${oldFolder}/000900.ldb`, 'interrupted');
      await store.put(`${youngFolder}/000901.ldb`, 'in flight');

      const roots = new Set(await readableRoots(store, 'pg'));
      const folderOf = (k: string) => k.split('/').slice(0, 2).join('/');
      const isOld = (k: string) => Date.now() - decodeTime(folderOf(k).split('/')[1]!.split('_')[0]!) >= HOUR;
      const unreferenced = await unreferencedObjects(store, 'pg');
      const expected = unreferenced.filter((k) => !roots.has(folderOf(k)) && isOld(k)).sort();
      const young = unreferenced.filter((k) => !isOld(k));
      expect(expected).toContain(`${oldFolder}/000900.ldb`);
      expect(expected.some((k) => !k.startsWith(oldFolder))).toBe(true); // swept leftovers too
      expect(young).toContain(`${youngFolder}/000901.ldb`);
      expect(young.some((k) => !k.startsWith(youngFolder))).toBe(true); // recent leftovers too
      const before = await listAll(store, 'pg/');
      const cli = (args: string[]) => runCli(['--json', 'snapshots', 'gc', '--partition', 'pg', ...args], { cwd });

      const dry = await cli(['--dry-run']);
      expect(dry.code, dry.stderr).toBe(0);
      const planned = JSON.parse(dry.stdout);
      expect(planned).toMatchObject({ partition: 'pg', dryRun: true });
      expect([...planned.deleted].sort()).toEqual(expected);
      expect([...planned.roots].sort()).toEqual([...roots].sort());
      expect(planned.shared.length).toBeGreaterThan(0);
      expect(await listAll(store, 'pg/')).toEqual(before);

      // Without latest.json the roots are unknown: refused, nothing deleted.
      const latestBody = (await store.get(layout.latest('pg'))).body;
      await store.delete([layout.latest('pg')]);
      for (const args of [['--dry-run'], []]) {
        const refused = await cli(args);
        expect(refused.code).toBe(1);
        expect(JSON.parse(refused.stdout.trim().split('\n').pop()!).error.code).toBe('NO_SNAPSHOT');
      }
      const withoutLatest = new Map(before);
      withoutLatest.delete(layout.latest('pg'));
      expect(await listAll(store, 'pg/')).toEqual(withoutLatest);
      await store.put(layout.latest('pg'), latestBody);

      const done = await cli([]);
      expect(done.code, done.stderr).toBe(0);
      const report = JSON.parse(done.stdout);
      expect(report.dryRun).toBe(false);
      expect([...report.deleted].sort()).toEqual(expected);
      const left = await listAll(store, 'pg/');
      expect([...left.keys()].sort()).toEqual([...before.keys()].filter((k) => !expected.includes(k)).sort());
      // Younger than the grace: untouched, though unreferenced (an upload may be in progress).
      for (const k of young) expect(left.has(k), k).toBe(true);
      await expectAllRestorable(r, 'pg', rig.at);

      // The collector with no grace takes the rest, and only that.
      const rest = await r.collectGarbage('pg', { graceMs: 0 });
      expect([...rest.deleted].sort()).toEqual([...young].sort());
      expect(await unreferencedObjects(store, 'pg')).toEqual([]);
      await expectAllRestorable(r, 'pg', rig.at);
      await expectCode(() => r.collectGarbage('nope', { graceMs: 0 }), 'NO_SNAPSHOT');
    });
  });
});
