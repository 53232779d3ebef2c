import { join } from 'node:path';
import { GetObjectCommand, GetObjectTaggingCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import { createStore } from '../../src/store/index.js';
import type { ObjectStore } from '../../src/store/types.js';
import { churnRig, loadRig, type ChurnRig } from '../helpers/churn-rig.js';
import { tempDir } from '../helpers/cli.js';
import { releasedAfterEach } from '../helpers/runtime-harness.js';
import { rawBucketForFile, s3StoreConfig, uniqueS3Prefix } from '../helpers/s3.js';
import { dumpState, fsStore, sortedEntries } from '../helpers/snapshot-fixtures.js';

/**
 * snapshots.retire "tag" on MinIO: evicted snapshots lose their metadata.json and have every
 * other object they alone hold tagged cairn-retired=true (for a bucket lifecycle rule to
 * expire), while latest.json and every object a retained snapshot needs stay untagged. All
 * checks of the bucket go through a raw S3 client and plain JSON, none of Cairn's code.
 */

const { dirs, closers } = releasedAfterEach();
const rb = rawBucketForFile();

async function rawKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const res = await rb.client.send(new ListObjectsV2Command({ Bucket: rb.bucket, Prefix: prefix, ContinuationToken }));
    for (const o of res.Contents ?? []) keys.push(o.Key!);
    ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return keys;
}

async function rawJson(key: string): Promise<any> {
  const res = await rb.client.send(new GetObjectCommand({ Bucket: rb.bucket, Key: key }));
  return JSON.parse(await res.Body!.transformToString());
}

async function tagsOf(key: string): Promise<Record<string, string>> {
  const res = await rb.client.send(new GetObjectTaggingCommand({ Bucket: rb.bucket, Key: key }));
  return Object.fromEntries((res.TagSet ?? []).map((t) => [t.Key!, t.Value!]));
}

/** The bucket as it is: every key of the partition, the live ones (latest.json, retained snapshots' metadata and files), the folders. */
async function survey(prefix: string, partition: string) {
  const base = `${prefix}/${partition}/`;
  const keys = await rawKeys(base);
  const pointer = await rawJson(`${base}latest.json`);
  const retained: string[] = pointer.retained.map((e: { path: string }) => `${prefix}/${e.path}`);
  const live = new Set<string>([`${base}latest.json`]);
  for (const path of retained) {
    const meta = await rawJson(`${path}/metadata.json`);
    live.add(`${path}/metadata.json`);
    for (const f of meta.files as Array<{ key: string }>) live.add(`${prefix}/${f.key}`);
  }
  const folders = [...new Set(keys.filter((k) => k !== `${base}latest.json`).map((k) => k.slice(0, k.indexOf('/', base.length))))];
  return { keys, pointer, retained, live, folders, evicted: folders.filter((f) => !retained.includes(f)) };
}

async function rig(partition: string): Promise<ChurnRig> {
  const r = await churnRig(partition);
  dirs.push(r.root);
  closers.push(() => r.close());
  return r;
}

function s3Store(prefix: string): ObjectStore {
  const store = createStore(s3StoreConfig(prefix));
  closers.push(() => store.close());
  return store;
}

describe.each(['copy', 'shared'] as const)('snapshots.retire "tag", sharing "%s", on MinIO', (sharing) => {
  it('evicted objects are tagged and their metadata.json deleted; latest.json and retained snapshots carry no tag and restore', async () => {
    const prefix = uniqueS3Prefix(`retire-tag-${sharing}`);
    const store = s3Store(prefix);
    const retain = 2;
    const repo = new SnapshotRepository(store, { retain, concurrency: 8, evictionGraceMs: 0, sharing, retire: 'tag' });
    const p = await rig('p0');
    await loadRig(p, 1000);
    const checkpoints = 5;
    for (let round = 0; round < checkpoints; round++) {
      await p.churn(round);
      expect((await p.checkpoint(repo)).status).toBe('published');
    }

    const s = await survey(prefix, 'p0');
    expect(s.retained).toHaveLength(retain);
    expect(s.evicted).toHaveLength(checkpoints - retain);

    // Nothing live carries the tag: not latest.json, not a retained snapshot's objects
    // (with "shared", some of those live in evicted folders).
    for (const key of s.live) {
      expect(await tagsOf(key), key).not.toHaveProperty('cairn-retired');
      expect(s.keys, `live ${key} exists`).toContain(key);
    }

    let retired = 0;
    let sharedInEvicted = 0;
    for (const folder of s.evicted) {
      expect(s.keys, 'an evicted folder has no metadata.json').not.toContain(`${folder}/metadata.json`);
      for (const key of s.keys.filter((k) => k.startsWith(`${folder}/`))) {
        const tags = await tagsOf(key);
        if (s.live.has(key)) {
          sharedInEvicted++;
          expect(tags, key).not.toHaveProperty('cairn-retired');
        } else {
          retired++;
          expect(tags['cairn-retired'], key).toBe('true');
          expect(Number.isNaN(Date.parse(tags['cairn-retired-at'] ?? '')), key).toBe(false);
        }
      }
    }
    expect(retired).toBeGreaterThan(0);
    // "shared": retained snapshots reference unchanged tables where evicted ones stored them.
    if (sharing === 'shared') expect(sharedInEvicted).toBeGreaterThan(0);
    else expect(sharedInEvicted).toBe(0);

    // The retained snapshots restore, to the state they were taken at.
    for (const e of s.pointer.retained as Array<{ snapshotId: string; lsn: number }>) {
      const dir = join(tempDir('cairn-retire-restore-'), 'p0');
      dirs.push(join(dir, '..'));
      await repo.restore({ partition: 'p0', targetDir: dir, snapshotId: e.snapshotId });
      const dump = await dumpState(dir);
      expect(dump.lsn).toBe(e.lsn);
      expect(dump.entries).toEqual(sortedEntries(p.at.get(e.lsn)!));
    }

    // The collector over the retired folders: a dry run reports and writes nothing; neither
    // touches what is live.
    const before = new Map(await Promise.all(s.keys.filter((k) => !s.live.has(k) && k !== `${prefix}/p0/latest.json`).map(async (k) => [k, (await tagsOf(k))['cairn-retired-at']] as const)));
    const dry = await repo.collectGarbage('p0', { dryRun: true, graceMs: 0 });
    expect(dry.deleted).toEqual([]);
    expect(new Set(dry.retired)).toEqual(new Set([...before.keys()].map((k) => k.slice(prefix.length + 1))));
    for (const [k, at] of before) expect((await tagsOf(k))['cairn-retired-at'], k).toBe(at);
    expect(await rawKeys(`${prefix}/`)).toEqual(s.keys);
    for (const key of s.live) expect(await tagsOf(key), key).not.toHaveProperty('cairn-retired');
  });
});

describe('snapshots.retire "tag" on a store without tags', () => {
  it('deletes instead, warning once', async () => {
    const root = tempDir('cairn-retire-fs-');
    dirs.push(root);
    const store = fsStore(root);
    closers.push(() => store.close());
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const repo = new SnapshotRepository(store, { retain: 1, concurrency: 4, evictionGraceMs: 0, retire: 'tag', logger });
    const p = await rig('p0');
    for (let round = 0; round < 3; round++) {
      await p.churn(round);
      expect((await p.checkpoint(repo)).status).toBe('published');
    }
    const folders = await store.listFolders('p0/');
    expect(folders).toHaveLength(1);
    // Two sweeps fell back to deleting; the warning came once.
    expect(lines.filter((l) => /no object tags/.test(l))).toHaveLength(1);
  });
});
