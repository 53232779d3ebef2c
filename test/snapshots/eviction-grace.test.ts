import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFork } from '../../src/forks/fork.js';
import { layout } from '../../src/snapshots/layout.js';
import { pruneSnapshots } from '../../src/snapshots/prune.js';
import { readLatest } from '../../src/snapshots/pointer.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import { PartitionState } from '../../src/state/partition-state.js';
import type { ObjectStore } from '../../src/store/types.js';
import { dumpState, folders, fsStore, hasObject, sortedEntries, stateRig, type StateRig } from '../helpers/snapshot-fixtures.js';

/**
 * A snapshot that leaves retained[] is not deleted at once: latest.json lists it under
 * `evicted[]` with the time it left, and the first publish after the grace period deletes it.
 * A restore that read an older pointer therefore finds its snapshot whole for that long.
 */

const P = 'p0';
const GRACE = 600;
let rig: StateRig;
let store: ObjectStore;
let repo: SnapshotRepository;

beforeEach(async () => {
  rig = await stateRig('eviction-grace');
  store = fsStore(rig.dir);
  repo = new SnapshotRepository(store, { retain: 1, concurrency: 4, evictionGraceMs: GRACE });
});
afterEach(async () => {
  await store?.close();
  await rig?.close();
});

async function snapshotAt(lsn: number) {
  await rig.commitAt(lsn);
  const r = await rig.checkpointNow(repo);
  expect(r.status).toBe('published');
  return r.metadata;
}

const folderOf = (m: { snapshotId: string; lsn: number }) => `${m.snapshotId}_${m.lsn}`;

describe('eviction grace', () => {
  it('keeps an evicted snapshot whole and listed until the grace has passed, then the next publish deletes it', async () => {
    const a = await snapshotAt(10);
    const b = await snapshotAt(20);
    let pointer = (await readLatest(store, P))!.pointer;
    expect(pointer.retained.map((e) => e.lsn)).toEqual([20]);
    expect(pointer.evicted?.map((e) => e.lsn)).toEqual([10]);
    expect(await folders(store, P)).toEqual([folderOf(a), folderOf(b)].sort());

    // A reader pointed at A before it was evicted can still restore it.
    const target = join(rig.dir, 'restored');
    await repo.restore({ partition: P, snapshotId: a.snapshotId, targetDir: target });
    const dump = await dumpState(target);
    expect(dump.lsn).toBe(10);
    expect(dump.entries).toEqual(sortedEntries(rig.modelAt(10)));

    await sleep(GRACE + 100);
    const c = await snapshotAt(30);
    pointer = (await readLatest(store, P))!.pointer;
    // A's grace is over: deleted, and no longer listed; B has just been evicted.
    expect(pointer.evicted?.map((e) => e.lsn)).toEqual([20]);
    expect(await folders(store, P)).toEqual([folderOf(b), folderOf(c)].sort());
    expect((await repo.verify(P, b.snapshotId)).ok).toBe(true);
  });

  it('prune keeps an evicted snapshot within its grace, and deletes it (and unlists it) after', async () => {
    await snapshotAt(10);
    const b = await snapshotAt(20);
    const young = await pruneSnapshots(store, P, 1, { evictionGraceMs: GRACE });
    expect(young.deleted).toEqual([]);
    expect(young.kept.map((k) => k.path)).toContain(`${P}/${folderOf((await readLatest(store, P))!.pointer.evicted![0]!)}`);

    const later = await pruneSnapshots(store, P, 1, { evictionGraceMs: GRACE, now: Date.now() + GRACE + 1 });
    expect(later.deleted.length).toBe(1);
    const pointer = (await readLatest(store, P))!.pointer;
    expect(pointer.evicted).toBeUndefined();
    expect(await folders(store, P)).toEqual([folderOf(b)]);
  });

  it("a fork's pin stays while an evicted fork snapshot within its grace still reads the parent's files", async () => {
    await snapshotAt(10);
    await createFork(store, { from: P, at: { kind: 'latest' }, name: 'f1', node: 'n1' });
    // The fork's own state: the parent's snapshot restored, then checkpointed as f1 (its
    // tables are copied into f1's folder, so this snapshot owns all its files).
    const forkDir = join(rig.dir, 'fork-state');
    await repo.restore({ partition: 'f1', targetDir: forkDir });
    const fork = await PartitionState.open(forkDir, { create: false });
    try {
      const checkpointFork = async (lsn: number) => {
        await fork.commit(new Map([[`f1-${lsn}`, lsn]]), lsn);
        const c = await fork.capture(join(rig.dir, 'fork-staging', String(lsn)));
        try {
          return await repo.checkpoint(c, { partition: 'f1', node: 'n1', source: `embedded:${P}` });
        } finally {
          await c.release();
        }
      };
      await checkpointFork(11);
      // The fork's first snapshot (the parent's files, by the parent's keys) is evicted but in
      // its grace: a restore may still read it, so the pin on the parent stays.
      expect((await readLatest(store, 'f1'))!.pointer.evicted?.length).toBe(1);
      expect(await hasObject(store, layout.pin(P, 'f1'))).toBe(true);
      await sleep(GRACE + 100);
      await checkpointFork(12);
      expect(await hasObject(store, layout.pin(P, 'f1'))).toBe(false);
    } finally {
      await fork.close();
    }
  });

  it('with a grace of 0, evicted snapshots are deleted by the publish that evicts them', async () => {
    const now = new SnapshotRepository(store, { retain: 1, concurrency: 4, evictionGraceMs: 0 });
    await rig.commitAt(10);
    await rig.checkpointNow(now);
    await rig.commitAt(20);
    const b = await rig.checkpointNow(now);
    expect((await readLatest(store, P))!.pointer.evicted).toBeUndefined();
    expect(await folders(store, P)).toEqual([folderOf(b.metadata)]);
  });
});
