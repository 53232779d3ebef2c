import { randomBytes } from 'node:crypto';
import { GetObjectTaggingCommand } from '@aws-sdk/client-s3';
import { describe, expect } from 'vitest';
import { createStore } from '../../src/store/index.js';
import type { MeteredObjectStore } from '../../src/store/metrics.js';
import { FaultyStore } from '../helpers/faulty-store.js';
import { it } from '../helpers/fixtures.js';
import { rawBucketForFile, s3StoreConfig, uniqueS3Prefix } from '../helpers/s3.js';

/**
 * ObjectStore.tag (snapshots.retire "tag"): on MinIO the tags are read back with a raw S3
 * client Cairn did not write; a copy never carries the source's tags (a retired object copied
 * into a live snapshot must not expire with it); the filesystem store has no tags.
 */

const MiB = 1024 * 1024;
const rb = rawBucketForFile();

async function tagsOf(fullKey: string): Promise<Record<string, string>> {
  const res = await rb.client.send(new GetObjectTaggingCommand({ Bucket: rb.bucket, Key: fullKey }));
  return Object.fromEntries((res.TagSet ?? []).map((t) => [t.Key!, t.Value!]));
}

describe('tag on S3 (MinIO)', () => {
  it('replaces the tag set, readable with a raw client; NOT_FOUND for a missing key; counted as op "tag"', async () => {
    const prefix = uniqueS3Prefix('tagging');
    const store = createStore(s3StoreConfig(prefix)) as MeteredObjectStore;
    try {
      expect(store.capabilities.tagging).toBe(true);
      await store.put('a/obj', 'hello');
      await store.tag('a/obj', { 'cairn-retired': 'true', 'cairn-retired-at': '2024-01-02T03:04:05.000Z' });
      expect(await tagsOf(`${prefix}/a/obj`)).toEqual({ 'cairn-retired': 'true', 'cairn-retired-at': '2024-01-02T03:04:05.000Z' });
      // The whole set is replaced, not merged.
      await store.tag('a/obj', { other: 'x' });
      expect(await tagsOf(`${prefix}/a/obj`)).toEqual({ other: 'x' });
      // The object itself is untouched.
      expect((await store.get('a/obj')).body.toString()).toBe('hello');

      await expect(store.tag('a/missing', { k: 'v' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(store.snapshot().requests.tag).toEqual({ ok: 2, NOT_FOUND: 1 });
    } finally {
      await store.close();
    }
  });

  it('copy never carries tags over: single-request copy and multipart copy', async () => {
    const prefix = uniqueS3Prefix('tagging-copy');
    // Above 1 MiB the store copies in parts (UploadPartCopy), a path of its own.
    const store = createStore(s3StoreConfig(prefix), { s3: { maxSingleCopyBytes: MiB, copyPartSizeBytes: 5 * MiB } });
    try {
      await store.put('small', 'small body');
      await store.tag('small', { 'cairn-retired': 'true' });
      await store.copy('small', 'small-copy');
      expect(await tagsOf(`${prefix}/small-copy`)).toEqual({});
      expect(await tagsOf(`${prefix}/small`)).toEqual({ 'cairn-retired': 'true' });
      expect((await store.get('small-copy')).body.toString()).toBe('small body');

      const big = randomBytes(6 * MiB);
      await store.put('big', big);
      await store.tag('big', { 'cairn-retired': 'true' });
      await store.copy('big', 'big-copy', { size: big.length });
      expect(await tagsOf(`${prefix}/big-copy`)).toEqual({});
      expect((await store.get('big-copy')).body.equals(big)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('is injectable like every other op (FaultyStore)', async () => {
    const prefix = uniqueS3Prefix('tagging-faulty');
    const inner = createStore(s3StoreConfig(prefix));
    const store = new FaultyStore(inner);
    try {
      await store.put('k', 'v');
      const fault = store.inject({ op: 'tag', mode: 'fail', times: 1 });
      await expect(store.tag('k', { a: 'b' })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await store.tag('k', { a: 'b' });
      expect(fault.hits).toBe(1);
      expect(await tagsOf(`${prefix}/k`)).toEqual({ a: 'b' });
    } finally {
      await store.close();
    }
  });
});

describe('tag on the filesystem store', () => {
  it('has no tagging capability; tag is STORE_FAILED (and not retried)', async ({ tmp: root }) => {
    const store = createStore({ kind: 'fs', url: `file://${root}`, root, multipartThresholdBytes: 64 * MiB, partSizeBytes: 16 * MiB, connectTimeoutMs: 1000, requestTimeoutMs: 1000, maxAttempts: 4 });
    try {
      expect(store.capabilities.tagging).toBe(false);
      await store.put('k', 'v');
      await expect(store.tag('k', { a: 'b' })).rejects.toMatchObject({ code: 'STORE_FAILED' });
      expect(store.snapshot().requests.tag).toEqual({ STORE_FAILED: 1 });
      expect(store.snapshot().retries).toEqual({});
    } finally {
      await store.close();
    }
  });
});
