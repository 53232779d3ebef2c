import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTableFile } from '../../src/snapshots/layout.js';
import { readLatest, readMetadata } from '../../src/snapshots/pointer.js';
import type { CheckpointResult, SnapshotRepository } from '../../src/snapshots/repository.js';
import { createStore } from '../../src/store/index.js';
import { FsObjectStore } from '../../src/store/fs/store.js';
import type { ObjectStore } from '../../src/store/types.js';
import { BACKENDS } from '../helpers/backends.js';
import { flipByteInFile } from '../helpers/faulty-store.js';
import { dumpState, modelOf, repository, sortedEntries, stateRig, storeConfigFor, writesAt, type StateRig } from '../helpers/snapshot-fixtures.js';

/**
 * One damaged object in the store must not spread. A checkpoint duplicates an unchanged table
 * only when the store confirms it still holds the recorded bytes (S3: the ETag recorded at
 * upload, required with x-amz-copy-source-if-match; the filesystem store: the sha256, checked
 * on the copied bytes). Otherwise it uploads its own copy and reports the damaged object, so
 * every later snapshot verifies and a fresh node can always start.
 */

const P = 'p0';

async function damage(store: ObjectStore, key: string): Promise<void> {
  if (store.capabilities.name === 'fs') {
    // A bit flip on the disk: same inode, size and mtime, so an ETag made of them cannot see
    // it; only the bytes can. (createStore wraps the backend; the file is under its root.)
    await flipByteInFile(new FsObjectStore(fileURLToPath(store.url)).pathOf(key), { mask: 0x01, keepTimes: true });
    return;
  }
  // On S3 the damage a client can do is a rewrite of other bytes under the same key.
  const { body } = await store.get(key);
  body[Math.floor(body.length / 2)] = body[Math.floor(body.length / 2)]! ^ 0x01;
  await store.put(key, body);
}

for (const backend of BACKENDS) {
  describe(`a damaged stored table is never copied forward (${backend.name})`, () => {
    let dir: string;
    let store: ObjectStore;
    let repo: SnapshotRepository;
    let rig: StateRig;
    const committed: number[] = [];

    beforeEach(async () => {
      rig = await stateRig(`damaged-${backend.name}`);
      dir = rig.dir;
      store = createStore(storeConfigFor(backend.storeConfig('damaged-copy'), dir));
      repo = repository(store, 3);
      committed.length = 0;
    });
    afterEach(async () => {
      await store?.close();
      await rig?.close();
    });

    async function commitAndCheckpoint(lsn: number): Promise<CheckpointResult> {
      // Fresh keys only: the tables of earlier checkpoints stay live and unchanged.
      const writes = new Map([...writesAt(lsn, 40, 200)].map(([k, v]) => [`${lsn}-${k}`, v]));
      await rig.state.commit(writes, lsn);
      committed.push(lsn);
      return rig.checkpointNow(repo);
    }

    it('uploads its own bytes instead, reports the damaged key, and every retained snapshot verifies', async () => {
      const first = await commitAndCheckpoint(100);
      expect(first.status).toBe('published');
      const tables = first.metadata.files.filter((f) => isTableFile(f.name));
      expect(tables.length).toBeGreaterThan(0);
      for (const f of first.metadata.files) expect(f.etag).toBe((await store.head(f.key)).etag);
      const victim = tables[0]!;
      await damage(store, victim.key);

      const second = await commitAndCheckpoint(200);
      expect(second.status).toBe('published');
      expect(second.damaged.map((d) => d.key)).toEqual([victim.key]);
      const carried = second.metadata.files.find((f) => f.name === victim.name)!;
      expect(carried.key).not.toBe(victim.key);
      expect(second.metadata.stats.uploadedBytes).toBeGreaterThanOrEqual(victim.size);
      // The other unchanged tables were still copied server-side.
      if (tables.length > 1) expect(second.metadata.stats.copiedBytes).toBeGreaterThan(0);

      // Three more checkpoints evict the damaged snapshot; none of them inherits the damage.
      for (const lsn of [300, 400, 500]) {
        const r = await commitAndCheckpoint(lsn);
        expect(r.status).toBe('published');
        expect(r.damaged).toEqual([]);
      }
      const latest = (await readLatest(store, P))!.pointer;
      expect(latest.retained.map((e) => e.lsn)).toEqual([500, 400, 300]);
      for (const e of latest.retained) {
        const report = await repo.verify(P, e.snapshotId);
        expect(report.problems).toEqual([]);
        expect(report.ok).toBe(true);
        const meta = await readMetadata(store, e.path);
        expect(meta.files.some((f) => f.key === victim.key)).toBe(false);
      }
      const target = join(dir, 'restored');
      const restored = await repo.restore({ partition: P, targetDir: target });
      expect(restored.skipped).toEqual([]);
      const dump = await dumpState(target);
      expect(dump.lsn).toBe(500);
      const model = new Map<string, unknown>();
      for (const lsn of committed) for (const [k, v] of modelOf([lsn], 40, 200)) model.set(`${lsn}-${k}`, v);
      expect(dump.entries).toEqual(sortedEntries(model));
    });

    it('verify checks table blocks too: damage published under a matching sha256 (by an older version) is found', async () => {
      const first = await commitAndCheckpoint(100);
      const victim = first.metadata.files.find((f) => isTableFile(f.name))!;
      const { body } = await store.get(victim.key);
      body[Math.floor(body.length / 3)] = body[Math.floor(body.length / 3)]! ^ 0x01;
      await store.put(victim.key, body);
      const metaKey = `${first.metadata.partition}/${first.metadata.snapshotId}_${first.metadata.lsn}/metadata.json`;
      const files = first.metadata.files.map((f) => (f.key === victim.key ? { ...f, sha256: createHash('sha256').update(body).digest('hex'), etag: undefined } : f));
      await store.put(metaKey, JSON.stringify({ ...first.metadata, files }));
      const report = await repo.verify(P, first.metadata.snapshotId);
      expect(report.ok).toBe(false);
      expect(report.problems.map((p) => [p.key, p.problem])).toEqual([[victim.key, 'table']]);
    });
  });
}
