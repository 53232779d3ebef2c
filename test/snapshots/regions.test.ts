import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bank from '../../examples/bank/processor.js';
import { bankEvents } from '../../src/cli/demo-events.js';
import { normaliseConfig, type RawConfig } from '../../src/core/config.js';
import { readArchived } from '../../src/coordinator/trim-policy.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { layout } from '../../src/snapshots/layout.js';
import { jsonOf, runCli, tempDir } from '../helpers/cli.js';
import { deleteRaw, rawClient, startRegionB, stopRegionB, storageClassOf, twoRegionStores } from '../helpers/regions.js';
import { readState, releasedAfterEach, writeConfig } from '../helpers/runtime-harness.js';

/**
 * Storage classes over two regions: two MinIO servers, the global one ("eu") and a second
 * one this file starts on its own port ("us"), stopped and started again to make a region
 * go away. Objects are checked with a raw SDK client per region, outside Cairn.
 */
const { dirs, closers } = releasedAfterEach();
let endpointB: string;

beforeAll(async () => {
  endpointB = await startRegionB();
}, 600_000);
afterAll(async () => {
  // Left running, like the global services, unless a test stopped it and failed.
  await startRegionB().catch(() => undefined);
});

const P = 'geo-orders';

/** A config of two regions: GEO (both, reduced redundancy) for geo-*, STANDARD (eu) for the rest. */
async function regionConfig(label: string, home: 'eu' | 'us' = 'eu', shared?: { stores: Record<string, unknown>; logDir: string }, partition = P) {
  const dir = await tempDir(label);
  dirs.push(dir);
  // Fail fast while a region is down: the test is about what the others do meanwhile.
  const stores = shared?.stores ?? twoRegionStores(endpointB, label, { maxAttempts: 2, connectTimeoutMs: 500, requestTimeoutMs: 5_000 }).stores;
  const raw: RawConfig = {
    stores: stores as RawConfig['stores'],
    homeStore: home,
    storageClasses: { GEO: { stores: ['eu', 'us'], s3StorageClass: 'REDUCED_REDUNDANCY' } },
    classDefaults: [{ match: 'geo-*', class: 'GEO' }],
    log: { type: 'embedded', dir: shared?.logDir ?? join(dir, 'log') },
    stateDir: join(dir, 'state'),
    snapshots: { everyRecords: 0, retain: 2, evictionGraceMs: 0 },
  };
  const cairn = new Cairn(normaliseConfig(raw, dir, label));
  closers.push(() => cairn.close());
  return { cairn, stores, logDir: shared?.logDir ?? join(dir, 'log'), dir };
}

/** Appends `n` bank events, applies everything, and checkpoints the stopped state folder. */
async function applyAndCheckpoint(cairn: Cairn, n: number, seed: number, partition = P) {
  await cairn.log.append(partition, bankEvents(n, seed));
  const processor = cairn.processor(partition, bank, { everyRecords: 0 });
  await processor.run({ stopAtEnd: true });
  await processor.close();
  return cairn.checkpointStateDir(partition, cairn.stateDirOf(partition));
}

/** The storage class of every object of every retained snapshot of `partition` in one region, by a raw client. */
async function classesIn(cairn: Cairn, store: 'eu' | 'us', partition: string): Promise<{ snapshots: string[]; classes: Set<string>; metadataClasses: Set<string> }> {
  const config = cairn.config.placement.stores[store]!;
  const client = rawClient(config.endpoint!);
  try {
    const latest = await cairn.repositoryOf(store).latest(partition);
    const classes = new Set<string>();
    const metadataClasses = new Set<string>();
    for (const entry of latest?.pointer.retained ?? []) {
      const meta = await cairn.repositoryOf(store).metadata(partition, entry.snapshotId);
      metadataClasses.add(meta.storageClass);
      for (const key of [...meta.files.map((f) => f.key), layout.metadata(entry.path)]) classes.add(await storageClassOf(client, config.bucket!, `${config.prefix}/${key}`));
    }
    return { snapshots: (latest?.pointer.retained ?? []).map((e) => e.snapshotId), classes, metadataClasses };
  } finally {
    client.destroy();
  }
}

describe('storage classes over two regions (two MinIO servers)', () => {
  it('writes a GEO snapshot to both regions, each with its own latest.json, objects in the class\'s S3 storage class', async () => {
    const { cairn } = await regionConfig('geo-both');
    const result = await applyAndCheckpoint(cairn, 300, 1);
    expect(result.status).toBe('published');
    expect(result.stores).toEqual([
      { store: 'eu', status: 'published' },
      { store: 'us', status: 'published' },
    ]);
    expect(result.metadata.storageClass).toBe('GEO');
    const bucket = (cairn.config.placement.stores.eu!).bucket!;
    for (const [name, endpoint] of [['eu', cairn.config.placement.stores.eu!.endpoint!], ['us', endpointB]] as const) {
      const latest = await cairn.repositoryOf(name).latest(P);
      expect(latest?.pointer.snapshotId, name).toBe(result.metadata.snapshotId);
      const client = rawClient(endpoint);
      const prefix = cairn.config.placement.stores[name]!.prefix!;
      for (const file of result.metadata.files) expect(await storageClassOf(client, bucket, `${prefix}/${file.key}`), `${name} ${file.name}`).toBe('REDUCED_REDUNDANCY');
      expect(await storageClassOf(client, bucket, `${prefix}/${layout.metadata(latest!.pointer.path)}`)).toBe('REDUCED_REDUNDANCY');
      // The pointer is not part of the snapshot: it stays in the bucket's default class.
      expect(await storageClassOf(client, bucket, `${prefix}/${layout.latest(P)}`)).toBe('STANDARD');
      client.destroy();
    }
    // A partition no rule names stays in STANDARD: the home store only.
    await cairn.log.append('plain', bankEvents(20, 2));
    const plain = cairn.processor('plain', bank, { everyRecords: 0 });
    await plain.run({ stopAtEnd: true });
    await plain.close();
    const standard = await cairn.checkpointStateDir('plain', cairn.stateDirOf('plain'));
    expect(standard.stores).toEqual([{ store: 'eu', status: 'published' }]);
    expect(await cairn.repositoryOf('us').latest('plain')).toBeUndefined();
  });

  it('publishes in eu while us is down, holds the trim at us, and catches us up with the next checkpoint', async () => {
    const { cairn } = await regionConfig('geo-outage');
    const first = await applyAndCheckpoint(cairn, 200, 3);
    expect(first.stores.map((s) => s.status)).toEqual(['published', 'published']);

    await stopRegionB();
    try {
      const during = await applyAndCheckpoint(cairn, 200, 4);
      expect(during.status).toBe('published');
      expect(during.stores[0]).toEqual({ store: 'eu', status: 'published' });
      expect(during.stores[1]).toMatchObject({ store: 'us', status: 'failed', error: { code: 'STORE_UNAVAILABLE' } });
      expect((await cairn.repositoryOf('eu').latest(P))?.pointer.lsn).toBe(399);
      // The trim bound is the minimum over the class's stores: an unreachable one holds it back entirely.
      const archived = await readArchived(cairn.placement, P);
      expect(archived.archived).toBeUndefined();
      expect(archived.stores).toEqual([
        { store: 'eu', archivedLsn: 199 },
        expect.objectContaining({ store: 'us', archivedLsn: null }),
      ]);
      expect(archived.note).toMatch(/us/);
      // Bootstrapping still works from the region that answers.
      const fresh = await tempDir('geo-outage-restore');
      dirs.push(fresh);
      const restored = await cairn.placement.restore({ partition: P, targetDir: join(fresh, 'state') });
      expect({ store: restored.store, lsn: restored.metadata.lsn }).toEqual({ store: 'eu', lsn: 399 });
    } finally {
      await startRegionB();
    }
    // Back: us still says 199, so the archived LSN over both is us's.
    expect((await readArchived(cairn.placement, P)).archived?.lsn).toBe(199);
    const after = await applyAndCheckpoint(cairn, 100, 5);
    expect(after.stores.map((s) => s.status)).toEqual(['published', 'published']);
    const us = await cairn.repositoryOf('us').latest(P);
    expect(us?.pointer.lsn).toBe(499);
    // us's snapshot is whole: it verifies and restores to the state eu's restores to.
    expect((await cairn.repositoryOf('us').verify(P)).ok).toBe(true);
    const a = await tempDir('geo-outage-a');
    const b = await tempDir('geo-outage-b');
    dirs.push(a, b);
    await cairn.repositoryOf('eu').restore({ partition: P, targetDir: join(a, 's') });
    await cairn.repositoryOf('us').restore({ partition: P, targetDir: join(b, 's') });
    expect(await readState(join(b, 's'))).toEqual(await readState(join(a, 's')));
    // eu retains 399 and 499, us 199 and 499: the bound is 199 until us moves on.
    expect((await readArchived(cairn.placement, P)).archived?.lsn).toBe(199);
  });

  it('bootstraps a node whose home store lost the newest snapshot from the other region, to the state of a node that lost nothing', async () => {
    const writer = await regionConfig('geo-lost');
    await applyAndCheckpoint(writer.cairn, 250, 6);
    const newest = await applyAndCheckpoint(writer.cairn, 250, 7);
    expect(newest.stores.map((s) => s.status)).toEqual(['published', 'published']);
    // More records after the snapshot: a bootstrap replays them from the log.
    await writer.cairn.log.append(P, bankEvents(40, 8));
    const tail = writer.cairn.processor(P, bank, { everyRecords: 0 });
    await tail.run({ stopAtEnd: true });
    await tail.close();
    // The embedded log is single-process: the writer lets go of it for the reader.
    await writer.cairn.close();

    // eu (the readers' home) loses a table of its newest snapshot.
    const eu = writer.cairn.config.placement.stores.eu!;
    const client = rawClient(eu.endpoint!);
    const table = newest.metadata.files.find((f) => f.name.endsWith('.ldb'))!;
    await deleteRaw(client, eu.bucket!, `${eu.prefix}/${table.key}`);
    client.destroy();

    const shared = { stores: writer.stores, logDir: writer.logDir };
    const lost = await regionConfig('geo-lost-reader', 'eu', shared);
    const restored = await lost.cairn.placement.restore({ partition: P, targetDir: join(lost.dir, 'probe') });
    expect({ store: restored.store, snapshotId: restored.metadata.snapshotId }).toEqual({ store: 'us', snapshotId: newest.metadata.snapshotId });

    const node = lost.cairn.processor(P, bank, { everyRecords: 0 });
    const summary = await node.run({ stopAtEnd: true });
    await node.close();
    expect(summary.start).toMatchObject({ source: 'bootstrap', lsn: newest.metadata.lsn });
    expect(summary.recordsApplied).toBe(40);
    expect(await readState(lost.cairn.stateDirOf(P))).toEqual(await readState(writer.cairn.stateDirOf(P)));
  });

  it('cairn class set moves the retained snapshots from STANDARD to GEO and back; restores during the moves all succeed', async () => {
    const part = 'ledger';
    const { cairn, dir } = await regionConfig('class-move', 'eu', undefined, part);
    for (const seed of [11, 12]) expect((await applyAndCheckpoint(cairn, 300, seed, part)).stores.map((s) => s.store)).toEqual(['eu']);
    const expected = await readState(cairn.stateDirOf(part));
    const eu = await classesIn(cairn, 'eu', part);
    expect({ n: eu.snapshots.length, classes: [...eu.classes], meta: [...eu.metadataClasses] }).toEqual({ n: 2, classes: ['STANDARD'], meta: ['STANDARD'] });
    await cairn.log.close();
    const configFile = writeConfig(dir, {
      stores: { eu: storeEntry(cairn, 'eu'), us: storeEntry(cairn, 'us') },
      homeStore: 'eu',
      storageClasses: { GEO: { stores: ['eu', 'us'], s3StorageClass: 'REDUCED_REDUNDANCY' } },
      log: { type: 'embedded', dir: join(dir, 'log') },
      stateDir: join(dir, 'cli-state'),
    });

    // Readers restore over and over while the class changes under them.
    let moving = true;
    let restores = 0;
    const reader = (async () => {
      while (moving) {
        const target = join(dir, `probe-${restores}`);
        const r = await cairn.placement.restore({ partition: part, targetDir: target });
        expect(r.metadata.lsn).toBe(599);
        expect(await readState(target)).toEqual(expected);
        restores++;
      }
    })();
    try {
      const toGeo = await runCli(['--config', configFile, '--json', 'class', 'set', '--partition', part, 'GEO']);
      expect(toGeo.code, toGeo.stderr).toBe(0);
      expect(jsonOf(toGeo).partitions[0]).toMatchObject({ partition: part, className: 'GEO', aligned: true });
      // A reader on a config that knows GEO sees it; both regions retain both snapshots, reduced redundancy.
      const geo = new Cairn(normaliseConfig(JSON.parse((await import('node:fs')).readFileSync(configFile, 'utf8')), dir, configFile));
      closers.push(() => geo.close());
      expect((await geo.placement.placementOf(part)).className).toBe('GEO');
      for (const region of ['eu', 'us'] as const) {
        const c = await classesIn(geo, region, part);
        expect({ region, snapshots: c.snapshots, classes: [...c.classes], meta: [...c.metadataClasses] }).toEqual({ region, snapshots: eu.snapshots, classes: ['REDUCED_REDUNDANCY'], meta: ['GEO'] });
      }
      expect((await geo.repositoryOf('us').verify(part)).ok).toBe(true);

      const back = await runCli(['--config', configFile, '--json', 'class', 'set', '--partition', part, 'STANDARD']);
      expect(back.code, back.stderr).toBe(0);
      expect(jsonOf(back).partitions[0].stores).toEqual([
        expect.objectContaining({ store: 'eu', role: 'member' }),
        expect.objectContaining({ store: 'us', role: 'former' }),
      ]);
      const home = await classesIn(geo, 'eu', part);
      expect({ snapshots: home.snapshots, classes: [...home.classes], meta: [...home.metadataClasses] }).toEqual({ snapshots: eu.snapshots, classes: ['STANDARD'], meta: ['STANDARD'] });
      // us left the class: no pointer, no snapshot folder.
      expect(await geo.repositoryOf('us').latest(part)).toBeUndefined();
      expect(await geo.repositoryOf('us').list(part)).toEqual([]);
    } finally {
      moving = false;
      await reader;
    }
    expect(restores).toBeGreaterThan(0);
  });

  it('cairn retier --class brings snapshots in line after GEO is redefined, and cairn replicate catches up a region that was down', async () => {
    const part = 'geo-retier';
    const first = await regionConfig('retier', 'eu', undefined, part);
    const stores = { eu: storeEntry(first.cairn, 'eu'), us: storeEntry(first.cairn, 'us') };
    const base = { stores, homeStore: 'eu', classDefaults: [{ match: 'geo-*', class: 'GEO' }], log: { type: 'embedded', dir: first.logDir }, stateDir: join(first.dir, 'state'), snapshots: { everyRecords: 0, retain: 3, evictionGraceMs: 0 } };
    // GEO as first defined: eu alone, the bucket's default class.
    const before = new Cairn(normaliseConfig({ ...base, storageClasses: { GEO: { stores: ['eu'] } } }, first.dir, 'before'));
    closers.push(() => before.close());
    await first.cairn.close();
    for (const seed of [21, 22]) expect((await applyAndCheckpoint(before, 200, seed, part)).stores.map((s) => s.store)).toEqual(['eu']);
    await before.close();

    // Redefined: GEO gains us and reduced redundancy.
    const redefined = { ...base, storageClasses: { GEO: { stores: ['eu', 'us'], s3StorageClass: 'REDUCED_REDUNDANCY' } } };
    const file = writeConfig(first.dir, redefined, 'redefined.json');
    const retier = await runCli(['--config', file, '--json', 'retier', '--class', 'GEO']);
    expect(retier.code, retier.stderr).toBe(0);
    const report = jsonOf(retier).partitions;
    expect(report).toEqual([expect.objectContaining({ partition: part, className: 'GEO', aligned: true })]);
    const after = new Cairn(normaliseConfig(redefined, first.dir, 'after'));
    closers.push(() => after.close());
    const eu = await classesIn(after, 'eu', part);
    const us = await classesIn(after, 'us', part);
    expect(us.snapshots).toEqual(eu.snapshots);
    expect(eu.snapshots).toHaveLength(2);
    for (const c of [eu, us]) expect({ classes: [...c.classes], meta: [...c.metadataClasses] }).toEqual({ classes: ['REDUCED_REDUNDANCY'], meta: ['GEO'] });
    // Retiering again finds nothing to do.
    const again = await runCli(['--config', file, '--json', 'retier', '--partition', part]);
    expect(jsonOf(again).partitions[0].stores).toEqual([
      expect.objectContaining({ store: 'eu', replicated: null, reclassed: 0 }),
      expect.objectContaining({ store: 'us', replicated: null, reclassed: 0 }),
    ]);

    // us misses a checkpoint; cairn replicate brings it over once us is back.
    await stopRegionB();
    let missed;
    try {
      missed = await applyAndCheckpoint(after, 100, 23, part);
      expect(missed.stores.map((s) => s.status)).toEqual(['published', 'failed']);
      const down = await runCli(['--config', file, '--json', 'replicate', '--partition', part]);
      expect(down.code).toBe(1);
      expect(JSON.parse(down.stdout).partitions[0]).toMatchObject({ aligned: false });
    } finally {
      await startRegionB();
    }
    const replicate = await runCli(['--config', file, '--json', 'replicate', '--partition', part]);
    expect(replicate.code, replicate.stderr).toBe(0);
    expect(jsonOf(replicate).partitions[0].stores[1]).toMatchObject({ store: 'us', replicated: { snapshotId: missed.metadata.snapshotId, lsn: 499 }, lsn: 499 });
    expect((await after.repositoryOf('us').latest(part))?.pointer.snapshotId).toBe(missed.metadata.snapshotId);
    expect((await after.repositoryOf('us').verify(part)).ok).toBe(true);
    const probe = join(first.dir, 'probe-us');
    await after.repositoryOf('us').restore({ partition: part, targetDir: probe });
    expect(await readState(probe)).toEqual(await readState(after.stateDirOf(part)));

    // snapshots list: each snapshot's class and the stores holding it.
    const list = await runCli(['--config', file, '--json', 'snapshots', 'list', '--partition', part]);
    const listed = jsonOf(list);
    expect(listed.storageClass).toBe('GEO');
    expect(listed.snapshots.filter((x: { retained: boolean }) => x.retained).map((x: { stores: string[]; storageClass: string }) => [x.storageClass, x.stores])).toEqual([
      ['GEO', ['eu', 'us']],
      ['GEO', ['eu', 'us']],
      ['GEO', ['eu', 'us']],
    ]);
  });
});

function storeEntry(cairn: Cairn, name: 'eu' | 'us') {
  const s = cairn.config.placement.stores[name]!;
  return { url: s.url, endpoint: s.endpoint, region: s.region, forcePathStyle: true };
}
