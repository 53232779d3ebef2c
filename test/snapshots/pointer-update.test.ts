import { afterEach, describe, expect, it } from 'vitest';
import { layout } from '../../src/snapshots/layout.js';
import { readLatest } from '../../src/snapshots/pointer.js';
import { publishPointer } from '../../src/snapshots/pointer-update.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import type { ObjectStore, PutOptions } from '../../src/store/types.js';
import { expectCode } from '../helpers/fixtures.js';
import { fsStore, removeDir, repository, stateRig, tempDir, type StateRig } from '../helpers/snapshot-fixtures.js';

/**
 * latest.json changes through one primitive (updatePointer): contention is reported as
 * CONFLICT (not an outage), a pointer that vanished does not let a slow writer move it
 * backwards, and the store's capabilities decide what a checkpoint may do.
 */

const P = 'p0';

/** Rewrites latest.json (changing its ETag) right before every conditional PUT of it: every CAS loses. */
function meddling(inner: ObjectStore): ObjectStore & { conditionalPuts: number } {
  let conditionalPuts = 0;
  const key = layout.latest(P);
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'conditionalPuts') return conditionalPuts;
      if (prop !== 'put') return Reflect.get(target, prop, receiver) as unknown;
      return async (k: string, body: Buffer | string, options?: PutOptions) => {
        if (k === key && (options?.ifMatch !== undefined || options?.ifNoneMatch !== undefined)) {
          conditionalPuts++;
          const current = await target.get(key).catch(() => undefined);
          if (current) await target.put(key, `${current.body.toString()} `);
        }
        return target.put(k, body, options);
      };
    },
  }) as ObjectStore & { conditionalPuts: number };
}

/** The same store, declaring fewer capabilities (and failing loudly if a withheld one is used). */
function withCapabilities(inner: ObjectStore, overrides: Partial<ObjectStore['capabilities']>): ObjectStore & { copies: number } {
  let copies = 0;
  const capabilities = { ...inner.capabilities, ...overrides };
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'capabilities') return capabilities;
      if (prop === 'copies') return copies;
      if (prop === 'copy') {
        return (...args: Parameters<ObjectStore['copy']>) => {
          copies++;
          return target.copy(...args);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  }) as ObjectStore & { copies: number };
}

describe('updatePointer', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0)) await f();
  });
  async function rig(): Promise<StateRig> {
    const r = await stateRig('pointer-update');
    cleanup.push(() => r.close());
    return r;
  }

  it('reports contention as CONFLICT, final (not retryable), after a bounded number of attempts', async () => {
    const dir = await tempDir('pointer-conflict');
    cleanup.push(() => removeDir(dir));
    const store = fsStore(dir);
    const entry = (lsn: number) => ({ snapshotId: `01JAAAAAAAAAAAAAAAAAAAA${String(lsn).padStart(3, '0')}`, lsn, path: `${P}/x_${lsn}`, createdAt: new Date().toISOString() });
    await publishPointer(store, P, entry(100), { retain: 3 });
    const contended = meddling(store);
    const err = await expectCode(() => publishPointer(contended, P, entry(200), { retain: 3 }), 'CONFLICT');
    expect(err.retryable).toBe(false);
    expect(err.details?.attempts).toBe(contended.conditionalPuts);
    expect(contended.conditionalPuts).toBeGreaterThan(1);
    expect(contended.conditionalPuts).toBeLessThanOrEqual(50);
    // Every PUT lost: the pointer is the one the meddler kept rewriting, still at 100.
    expect((await readLatest(store, P))?.pointer.lsn).toBe(100);
  });

  it('a vanished latest.json does not let a slow writer create a pointer older than the newest complete snapshot', async () => {
    const r = await rig();
    const store = fsStore(r.dir + '-store');
    cleanup.push(() => removeDir(r.dir + '-store'));
    const repo = repository(store, 3);
    await r.commitAt(50);
    const slow = await r.capture(); // a writer that captured at 50 and is slow to upload
    await r.commitAt(100);
    expect((await r.checkpointNow(repo)).status).toBe('published');
    // An aggressive lifecycle rule (or a careless delete) removes the pointer.
    await store.delete([layout.latest(P)]);

    const late = await repo.checkpoint(slow, { partition: P, node: 'slow', source: `embedded:${P}` });
    await slow.release();
    expect(late.status).toBe('superseded');
    if (late.status === 'superseded') expect(late.currentLsn).toBe(100);
    expect(await readLatest(store, P)).toBeUndefined();

    // The next writer above the newest folder recreates it. An unpublished folder is never
    // adopted into retained[] (its own writer may be deleting it): the 100 folder stays for prune.
    await r.commitAt(150);
    const next = await r.checkpointNow(repo);
    expect(next.status).toBe('published');
    expect((await readLatest(store, P))?.pointer.retained.map((e) => e.lsn)).toEqual([150]);
  });
});

describe('store capabilities', () => {
  it('a store without conditional writes is refused up front, naming the capability', async () => {
    const dir = await tempDir('caps');
    try {
      const store = withCapabilities(fsStore(dir), { conditionalWrite: false });
      let err: unknown;
      try {
        new SnapshotRepository(store, { retain: 3, concurrency: 4 });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'INVALID_CONFIG', details: { capability: 'conditionalWrite' } });
    } finally {
      await removeDir(dir);
    }
  });

  it('without server-side copy, a checkpoint uploads its unchanged tables instead of copying them', async () => {
    const r = await stateRig('caps-copy');
    const dir = r.dir + '-store';
    try {
      const store = withCapabilities(fsStore(dir), { serverSideCopy: false });
      const repo = repository(store, 3);
      for (let lsn = 0; lsn < 30; lsn++) await r.commitAt(lsn);
      const first = await r.checkpointNow(repo);
      await r.commitAt(30);
      const second = await r.checkpointNow(repo);
      expect(first.status).toBe('published');
      expect(second.status).toBe('published');
      expect(store.copies).toBe(0);
      expect(second.metadata.stats.copiedBytes).toBe(0);
      const total = second.metadata.files.reduce((n, f) => n + f.size, 0);
      expect(second.metadata.stats.uploadedBytes).toBe(total);

      // The same state on a store that copies: the unchanged tables are copied, not uploaded.
      const copying = withCapabilities(fsStore(dir + '-copy'), {});
      const repo2 = repository(copying, 3);
      await r.checkpointNow(repo2);
      await r.commitAt(31);
      const again = await r.checkpointNow(repo2);
      expect(copying.copies).toBeGreaterThan(0);
      expect(again.metadata.stats.copiedBytes).toBeGreaterThan(0);
      await removeDir(dir + '-copy');
    } finally {
      await r.close();
      await removeDir(dir);
    }
  });
});
