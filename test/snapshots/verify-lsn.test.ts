import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSnapshotId } from '../../src/core/ids.js';
import { layout } from '../../src/snapshots/layout.js';
import type { SnapshotMetadata } from '../../src/snapshots/schemas.js';
import type { ObjectStore } from '../../src/store/types.js';
import { runCli } from '../helpers/cli.js';
import { expectCode } from '../helpers/fixtures.js';
import { fsStore, removeDir, repository, stateRig, type StateRig } from '../helpers/snapshot-fixtures.js';

/**
 * A snapshot whose files are exactly as recorded (sizes, sha256, block crcs all fine) but
 * whose state holds another applied LSN than its metadata and folder name claim: restore
 * rejects it, so verify must not call it ok.
 */

/** Copies a snapshot folder under a new id and LSN, with metadata saying that LSN. */
async function relabel(store: ObjectStore, meta: SnapshotMetadata, lsn: number): Promise<SnapshotMetadata> {
  const snapshotId = newSnapshotId();
  const path = layout.snapshotPath(meta.partition, snapshotId, lsn);
  const files = [];
  for (const f of meta.files) {
    const key = layout.file(path, f.name);
    const { etag } = await store.put(key, (await store.get(f.key)).body);
    files.push({ ...f, key, etag });
  }
  const relabelled: SnapshotMetadata = { ...meta, snapshotId, lsn, files };
  await store.put(layout.metadata(path), JSON.stringify(relabelled, null, 2));
  return relabelled;
}

describe('verify checks the applied LSN inside the snapshot', () => {
  let rig: StateRig;
  let store: ObjectStore;
  let genuine: SnapshotMetadata;
  let crafted: SnapshotMetadata;

  beforeAll(async () => {
    rig = await stateRig('verify-lsn');
    store = fsStore(rig.dir);
    const repo = repository(store, 3);
    for (const lsn of [3, 9, 17]) await rig.commitAt(lsn);
    const published = await rig.checkpointNow(repo);
    if (published.status !== 'published') throw new Error('expected a published snapshot');
    genuine = published.metadata;
    crafted = await relabel(store, genuine, 25);
    writeFileSync(join(rig.dir, 'cairn.config.json'), JSON.stringify({ store: { url: 'file://./store' } }));
  });

  afterAll(async () => {
    await store?.close();
    await rig?.close();
    await removeDir(rig?.dir);
  });

  it('reports the mismatch as a problem, as restore rejects it', async () => {
    const repo = repository(store, 3);
    expect(await repo.verify('p0', genuine.snapshotId)).toMatchObject({ ok: true, lsn: 17, problems: [] });
    const report = await repo.verify('p0', crafted.snapshotId);
    expect(report).toMatchObject({ ok: false, lsn: 25, problems: [{ problem: 'lsn', expected: 25, actual: 17 }] });

    const err = await expectCode(() => repo.restore({ partition: 'p0', snapshotId: crafted.snapshotId, targetDir: join(rig.dir, 'restored') }), 'NO_SNAPSHOT');
    expect(err.message).toMatch(/holds applied LSN 17, its metadata says 25/);
  });

  it('cairn verify exits 1 with one line; the genuine snapshot still exits 0', async () => {
    const bad = await runCli(['--json', 'verify', '--partition', 'p0', '--snapshot', crafted.snapshotId], { cwd: rig.dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/applied LSN 17.*25.*\[CORRUPT\]$/m);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problems: [{ problem: 'lsn', expected: 25, actual: 17 }] });

    const good = await runCli(['verify', '--partition', 'p0', '--snapshot', genuine.snapshotId], { cwd: rig.dir });
    expect(good.code, good.stderr).toBe(0);
  });
});
