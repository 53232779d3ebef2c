import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFork } from '../../src/forks/fork.js';
import { layout, isTableFile } from '../../src/snapshots/layout.js';
import { readMetadata } from '../../src/snapshots/pointer.js';
import { pruneSnapshots } from '../../src/snapshots/prune.js';
import { rebuildPointer } from '../../src/snapshots/rebuild.js';
import { listSnapshots, type CheckpointResult, type SnapshotRepository } from '../../src/snapshots/repository.js';
import { latestSchema, pinSchema, type SnapshotMetadata } from '../../src/snapshots/schemas.js';
import type { ObjectStore } from '../../src/store/types.js';
import { flipByteInFile } from '../helpers/faulty-store.js';
import { expectCode } from '../helpers/fixtures.js';
import {
  dumpState,
  folders,
  fsStore,
  repository,
  sortedEntries,
  stateRig,
  type StateRig,
} from '../helpers/snapshot-fixtures.js';

/**
 * A garbage latest.json: restore of a named snapshot, listing, prune, checkpoints and
 * `rebuildPointer` (the library side of `cairn pointer rebuild`). Real snapshots on the
 * filesystem store; assertions on outcomes and error codes, never on messages.
 */

const P = 'p0';
const NODE = 'n1';
const GARBAGE = 'garbage{';

let dir: string;
let store: ObjectStore;
let repo: SnapshotRepository;
let rig: StateRig;
let seq = 0;

beforeEach(async () => {
  rig = await stateRig('pointer-rebuild');
  dir = rig.dir;
  store = fsStore(dir);
  repo = repository(store, 3);
});
afterEach(async () => {
  await store?.close();
  await rig?.close();
});

const commitAt = (lsn: number) => rig.commitAt(lsn);
const modelAt = (lsn: number) => rig.modelAt(lsn);
const checkpointNow = (r: SnapshotRepository = repo): Promise<CheckpointResult> => rig.checkpointNow(r);

/** Commits and checkpoints at each LSN; returns the published snapshots' metadata, oldest first. */
async function snapshotsAt(...lsns: number[]): Promise<SnapshotMetadata[]> {
  const out: SnapshotMetadata[] = [];
  for (const lsn of lsns) {
    await commitAt(lsn);
    const r = await checkpointNow();
    expect(r.status).toBe('published');
    out.push(r.metadata);
  }
  return out;
}

const pathOf = (m: { snapshotId: string; lsn: number }) => layout.snapshotPath(P, m.snapshotId, m.lsn);

async function rawPointer(partition = P): Promise<Buffer | undefined> {
  try {
    return (await store.get(layout.latest(partition))).body;
  } catch {
    return undefined;
  }
}

/** Every object in the store with a hash of its bytes: equal listings mean nothing was written. */
async function storeListing(): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for await (const obj of store.list('')) out.push([obj.key, createHash('sha256').update((await store.get(obj.key)).body).digest('hex')]);
  return out;
}

/** Flips one byte of one of the snapshot's own tables, in place under the store root. */
async function corruptTable(meta: SnapshotMetadata): Promise<string> {
  const victim = meta.files.find((f) => isTableFile(f.name) && f.key.startsWith(`${pathOf(meta)}/`));
  expect(victim).toBeDefined();
  await flipByteInFile(join(dir, 'store', victim!.key));
  return victim!.name;
}

async function expectRestoresTo(lsn: number, snapshotId?: string): Promise<void> {
  const into = join(dir, 'restored', `r${seq++}`, P);
  const r = await repo.restore({ partition: P, targetDir: into, ...(snapshotId ? { snapshotId } : {}) });
  expect(r.metadata.lsn).toBe(lsn);
  const dump = await dumpState(into);
  expect(dump.lsn).toBe(lsn);
  expect(dump.entries).toEqual(sortedEntries(modelAt(lsn)));
}

async function garbagePointer(partition = P): Promise<Buffer> {
  await store.put(layout.latest(partition), GARBAGE);
  return (await rawPointer(partition))!;
}

describe('a garbage latest.json', () => {
  it('restores a named snapshot from its folder; without one restore fails CORRUPT', async () => {
    const [s10, s20, s30] = await snapshotsAt(10, 20, 30);
    await garbagePointer();

    await expectRestoresTo(20, s20!.snapshotId);
    await expectRestoresTo(30, s30!.snapshotId);
    await expectRestoresTo(10, s10!.snapshotId);
    await expectCode(() => repo.restore({ partition: P, targetDir: join(dir, 'restored', 'latest', P) }), 'CORRUPT');
    // A snapshot that does not exist is still NOT_FOUND, not CORRUPT.
    await expectCode(() => repo.restore({ partition: P, targetDir: join(dir, 'restored', 'x', P), snapshotId: '01ARZ3NDEKTSV4RRFFQ69G5FAV' }), 'NOT_FOUND');
  });

  it('lists every folder as complete and reports the pointer unreadable', async () => {
    const snaps = await snapshotsAt(10, 20, 30);
    await garbagePointer();

    const listed = await repo.listWithPointer(P);
    expect(listed.pointer).toMatchObject({ ok: false, exists: true });
    expect(listed.pointer.error).toBeTypeOf('string');
    expect(listed.snapshots.map((s) => s.path)).toEqual(snaps.map(pathOf).reverse());
    for (const s of listed.snapshots) expect(s).toMatchObject({ complete: true, retained: false, latest: false });
    expect(listed.snapshots.every((s) => typeof s.bytes === 'number' && s.bytes > 0)).toBe(true);
    expect((await listSnapshots(store, P)).map((s) => s.path)).toEqual(listed.snapshots.map((s) => s.path));
  });

  it('a readable pointer is reported ok by the listing', async () => {
    const [, , s30] = await snapshotsAt(10, 20, 30);
    const listed = await repo.listWithPointer(P);
    expect(listed.pointer).toEqual({ ok: true, exists: true, snapshotId: s30!.snapshotId, lsn: 30 });
    expect(listed.snapshots[0]).toMatchObject({ latest: true, retained: true });
  });

  it('prune refuses with CORRUPT and deletes nothing', async () => {
    await snapshotsAt(10, 20, 30);
    await garbagePointer();
    const before = await storeListing();
    await expectCode(() => pruneSnapshots(store, P, 1), 'CORRUPT');
    await expectCode(() => pruneSnapshots(store, P, 1, { dryRun: true }), 'CORRUPT');
    expect(await storeListing()).toEqual(before);
  });

  it('a checkpoint still fails CORRUPT and leaves the garbage byte-identical', async () => {
    await snapshotsAt(10, 20);
    const garbage = await garbagePointer();
    const foldersBefore = await folders(store, P);
    await commitAt(30);
    await expectCode(() => checkpointNow(), 'CORRUPT');
    expect(await rawPointer()).toEqual(garbage);
    expect((await folders(store, P)).sort()).toEqual(foldersBefore.sort());
  });

  it('rebuild: the dry run writes nothing; --apply writes a valid pointer to the newest; restore and checkpoints work again', async () => {
    const [s10, s20, s30] = await snapshotsAt(10, 20, 30);
    await garbagePointer();
    const before = await storeListing();

    const dry = await repo.rebuildPointer(P);
    expect(await storeListing()).toEqual(before);
    expect(dry).toMatchObject({ partition: P, dryRun: true, status: 'rebuild', written: false, current: { ok: false, exists: true } });
    expect(dry.pointer).toMatchObject({ snapshotId: s30!.snapshotId, lsn: 30, path: pathOf(s30!) });
    expect(dry.considered.map((c) => [c.path, c.ok])).toEqual([pathOf(s30!), pathOf(s20!), pathOf(s10!)].map((p) => [p, true]));

    const applied = await repo.rebuildPointer(P, { apply: true });
    expect(applied).toMatchObject({ dryRun: false, status: 'rebuild', written: true });
    const stored = latestSchema.parse(JSON.parse((await rawPointer())!.toString()));
    expect(stored).toEqual(applied.pointer);
    expect(stored).toEqual(dry.pointer);
    expect(stored).toEqual({
      format: 1,
      partition: P,
      snapshotId: s30!.snapshotId,
      lsn: 30,
      path: pathOf(s30!),
      createdAt: s30!.createdAt,
      retained: [s30!, s20!, s10!].map((m) => ({ snapshotId: m.snapshotId, lsn: m.lsn, path: pathOf(m), createdAt: m.createdAt })),
    });

    // The pointer works again: restore without --snapshot, and a checkpoint publishes on top.
    await expectRestoresTo(30);
    await commitAt(40);
    const next = await checkpointNow();
    expect(next.status).toBe('published');
    expect(next.metadata.lsn).toBe(40);
    const after = (await repo.latest(P))!.pointer;
    expect(after.lsn).toBe(40);
    expect(after.retained.map((e) => e.lsn)).toEqual([40, 30, 20]);
    // The checkpoint evicted the snapshot that fell out of retained[], as usual.
    expect((await folders(store, P)).map((f) => Number(f.split('_')[1])).sort((a, b) => a - b)).toEqual([20, 30, 40]);
  });

  it('rebuild keeps `retain` snapshots (the new latest included)', async () => {
    const [, s20, s30] = await snapshotsAt(10, 20, 30);
    await garbagePointer();
    const r = await rebuildPointer(store, P, { retain: 2, concurrency: 4, apply: true });
    expect(r.pointer.retained.map((e) => e.snapshotId)).toEqual([s30!.snapshotId, s20!.snapshotId]);
    // It stops verifying once it has enough.
    expect(r.considered.map((c) => c.lsn)).toEqual([30, 20]);
    expect((await repo.latest(P))!.pointer).toEqual(r.pointer);
  });

  it('rebuild skips a snapshot whose table is corrupt, and an incomplete folder, saying why', async () => {
    const [s10, s20, s30, s40] = await snapshotsAt(10, 20, 30, 40);
    expect(s10).toBeDefined();
    await garbagePointer();
    const victim = await corruptTable(s40!);
    // An interrupted upload: a newer folder without metadata.json.
    await store.delete([layout.metadata(pathOf(s30!))]);

    const r = await repo.rebuildPointer(P, { apply: true });
    const byLsn = new Map(r.considered.map((c) => [c.lsn, c]));
    expect(byLsn.get(40)).toMatchObject({ ok: false, problems: [{ name: victim, problem: 'sha256' }] });
    expect(byLsn.get(40)!.reason).toBeTypeOf('string');
    expect(byLsn.get(30)).toMatchObject({ ok: false });
    expect(byLsn.get(30)!.reason).toBeTypeOf('string');
    expect(byLsn.get(20)).toMatchObject({ ok: true });
    expect(r.pointer).toMatchObject({ snapshotId: s20!.snapshotId, lsn: 20 });
    // retain 3, but the evicted LSN 10 is gone and 30, 40 are unusable: only 20 remains.
    expect(r.pointer.retained.map((e) => e.lsn)).toEqual([20]);
    expect(latestSchema.safeParse(JSON.parse((await rawPointer())!.toString())).success).toBe(true);
    await expectRestoresTo(20);
  });

  it('no snapshot verifies: NO_SNAPSHOT and nothing written', async () => {
    const [s10] = await snapshotsAt(10);
    const garbage = await garbagePointer();
    await corruptTable(s10!);
    const before = await storeListing();
    await expectCode(() => repo.rebuildPointer(P, { apply: true }), 'NO_SNAPSHOT');
    await expectCode(() => repo.rebuildPointer(P), 'NO_SNAPSHOT');
    expect(await rawPointer()).toEqual(garbage);
    expect(await storeListing()).toEqual(before);
  });

  it('a pinned older snapshot stays in retained[] beyond the retain count', async () => {
    const [s10, s20] = await snapshotsAt(10, 20);
    const pin = pinSchema.parse({ format: 1, fork: 'f1', snapshots: [pathOf(s10!)], createdAt: new Date().toISOString() });
    await store.put(layout.pin(P, 'f1'), JSON.stringify(pin));
    const [s30, s40] = await snapshotsAt(30, 40);
    // The checkpoints kept the pinned snapshot too (the rest of Cairn's rule).
    expect((await repo.latest(P))!.pointer.retained.map((e) => e.lsn)).toEqual([40, 30, 20, 10]);
    expect(s20).toBeDefined();
    await garbagePointer();

    const r = await repo.rebuildPointer(P, { retain: 2, apply: true });
    expect(r.pointer.retained.map((e) => e.snapshotId)).toEqual([s40!.snapshotId, s30!.snapshotId, s10!.snapshotId]);
    expect(r.considered.find((c) => c.lsn === 10)).toMatchObject({ ok: true, pinnedBy: ['f1'] });
    expect(latestSchema.safeParse(JSON.parse((await rawPointer())!.toString())).success).toBe(true);
    // The next checkpoint still keeps it, and prune never deletes it.
    await commitAt(50);
    expect((await checkpointNow(repository(store, 2))).status).toBe('published');
    expect((await repo.latest(P))!.pointer.retained.map((e) => e.lsn)).toEqual([50, 40, 10]);
    const pruned = await pruneSnapshots(store, P, 1);
    expect(pruned.deleted.some((p) => p === pathOf(s10!))).toBe(false);
  });

  it("rebuilds a fork's pointer: its first snapshot's inherited files are verified in the parent", async () => {
    const [, s20] = await snapshotsAt(10, 20);
    const fork = await createFork(store, { from: P, at: { kind: 'latest' }, name: 'f1', node: NODE });
    await garbagePointer('f1');
    const r = await repo.rebuildPointer('f1', { apply: true });
    expect(r.pointer).toMatchObject({ partition: 'f1', snapshotId: fork.snapshotId, lsn: 20 });
    const meta = await readMetadata(store, r.pointer.path);
    expect(meta.files.every((f) => f.key.startsWith(`${pathOf(s20!)}/`))).toBe(true);
    // The parent keeps the forked snapshot pinned in its own retained[] as well.
    expect((await repo.rebuildPointer(P)).status).toBe('nothing-to-do');
  });
});

describe('rebuild with a readable pointer', () => {
  it('reports nothing to do when the pointer already names the newest snapshot, and writes nothing', async () => {
    await snapshotsAt(10, 20, 30);
    const before = await storeListing();
    const etag = (await store.get(layout.latest(P))).etag;
    for (const apply of [false, true]) {
      const r = await repo.rebuildPointer(P, { apply });
      expect(r).toMatchObject({ status: 'nothing-to-do', written: false, dryRun: !apply, current: { ok: true, lsn: 30 } });
      expect(r.pointer).toEqual((await repo.latest(P))!.pointer);
    }
    expect(await storeListing()).toEqual(before);
    expect((await store.get(layout.latest(P))).etag).toBe(etag);
  });

  it('never moves the pointer backwards', async () => {
    const [, , s30] = await snapshotsAt(10, 20, 30);
    await corruptTable(s30!);
    const before = await storeListing();
    for (const apply of [false, true]) {
      const err = await expectCode(() => repo.rebuildPointer(P, { apply }), 'CONDITION_FAILED');
      expect(err.exitCode).toBe(1);
      expect(err.details).toMatchObject({ refused: 'backwards', currentLsn: 30, newestVerifiedLsn: 20 });
    }
    expect(await storeListing()).toEqual(before);
    expect((await repo.latest(P))!.pointer.lsn).toBe(30);
  });

  it('moves a lagging pointer forward to a snapshot that was uploaded but never published', async () => {
    const [s10, s20] = await snapshotsAt(10, 20);
    const lagging = (await rawPointer())!;
    const [s30] = await snapshotsAt(30);
    await store.put(layout.latest(P), lagging); // as if the publish of 30 never happened

    const dry = await repo.rebuildPointer(P);
    expect(dry).toMatchObject({ status: 'rebuild', written: false, current: { ok: true, lsn: 20 }, pointer: { lsn: 30 } });
    expect(await rawPointer()).toEqual(lagging);
    const r = await repo.rebuildPointer(P, { apply: true });
    expect(r.written).toBe(true);
    expect((await repo.latest(P))!.pointer.retained.map((e) => e.snapshotId)).toEqual([s30!, s20!, s10!].map((m) => m.snapshotId));
  });

  it('writes a pointer that is absent, create-only', async () => {
    const [, s20] = await snapshotsAt(10, 20);
    await store.delete([layout.latest(P)]);
    const r = await repo.rebuildPointer(P, { apply: true });
    expect(r).toMatchObject({ written: true, current: { ok: false, exists: false }, pointer: { snapshotId: s20!.snapshotId } });
    expect((await repo.latest(P))!.pointer.lsn).toBe(20);
  });

  it('a concurrent write to latest.json wins: CONDITION_FAILED, nothing clobbered', async () => {
    await snapshotsAt(10, 20);
    await garbagePointer();
    const fixed = 'fixed by someone else{';
    let raced = false;
    // Another writer changes latest.json between the rebuild's read and its write.
    const racing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'listFolders') {
          return async (prefix: string) => {
            if (!raced) {
              raced = true;
              await target.put(layout.latest(P), fixed);
            }
            return target.listFolders(prefix);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    await expectCode(() => rebuildPointer(racing, P, { retain: 3, concurrency: 4, apply: true }), 'CONDITION_FAILED');
    expect((await rawPointer())!.toString()).toBe(fixed);
  });

  it('rejects a bad retain or partition with BAD_INPUT before reading anything', async () => {
    await expectCode(() => rebuildPointer(store, P, { retain: 0, concurrency: 4 }), 'BAD_INPUT');
    await expectCode(() => rebuildPointer(store, 'Bad/Name', { retain: 1, concurrency: 4 }), 'BAD_INPUT');
    await expectCode(() => repo.rebuildPointer('..'), 'BAD_INPUT');
  });
});
