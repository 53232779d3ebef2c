import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStore, type AttemptsInfo, type ObjectStore, type RetryInfo } from '../../src/store/index.js';
import { S3ObjectStore } from '../../src/store/s3/store.js';
import { expectCode, makeTempDir, removeDir } from '../helpers/fixtures.js';
import { s3StoreConfig, s3TestConfig, uniqueS3Prefix } from '../helpers/s3.js';
import { collect, runStoreConformance } from '../../src/testing/store-conformance.js';

const MiB = 1024 * 1024;
const FILE_PREFIX = uniqueS3Prefix(import.meta.url);

/**
 * Thresholds lowered so small test files take every bulk path: multipart upload (5 MiB
 * parts), parallel ranged download (1 MiB parts) and UploadPartCopy (above 6 MiB).
 */
const SMALL_PARTS = {
  multipartThresholdBytes: 5 * MiB,
  partSizeBytes: 5 * MiB,
};
const SMALL_S3 = { downloadPartSizeBytes: 1 * MiB, maxSingleCopyBytes: 6 * MiB, copyPartSizeBytes: 5 * MiB };

let suite = 0;
async function cleanupPrefix(store: ObjectStore): Promise<void> {
  const keys = (await collect(store.list(''))).map((o) => o.key);
  await store.delete(keys);
}

runStoreConformance('s3 (MinIO) via createStore (retry + metrics wrappers)', async () => {
  const config = s3StoreConfig(`${FILE_PREFIX}/conf-${suite++}`, SMALL_PARTS);
  const store = createStore(config, { s3: SMALL_S3, registry: new Registry() });
  return { store, cleanup: () => cleanupPrefix(store) };
});

runStoreConformance('s3 (MinIO) bare, no key prefix', async () => {
  // Prefix-less stores see the whole bucket; keys still go under a unique folder here.
  const s3 = s3TestConfig();
  const sub = `${FILE_PREFIX}/bare-${suite++}`;
  const inner = new S3ObjectStore({ bucket: s3.bucket, endpoint: s3.endpoint, ...SMALL_PARTS, ...SMALL_S3 });
  const store = prefixed(inner, sub);
  return { store, cleanup: () => cleanupPrefix(store) };
});

describe('S3ObjectStore specifics (MinIO)', () => {
  let store: S3ObjectStore;
  let scratch: string;
  beforeAll(async () => {
    const s3 = s3TestConfig();
    store = new S3ObjectStore({ bucket: s3.bucket, prefix: `${FILE_PREFIX}/specific`, endpoint: s3.endpoint, ...SMALL_PARTS, ...SMALL_S3 });
    scratch = await makeTempDir('s3');
  });
  afterAll(async () => {
    if (store) {
      await cleanupPrefix(store);
      await store.close();
    }
    await removeDir(scratch);
  });

  it('takes the multipart paths: part-count ETags on upload and on copy above the threshold', async () => {
    const file = join(scratch, 'mp');
    await writeFile(file, randomBytes(12 * MiB + 5));
    const up = await store.uploadFile('mp/src', file);
    expect(up.etag).toMatch(/^[0-9a-f]+-3$/);
    await store.copy('mp/src', 'mp/dst', { size: 12 * MiB + 5 });
    expect((await store.head('mp/dst')).etag).toMatch(/^[0-9a-f]+-3$/);
    await store.copy('mp/src', 'mp/small-threshold-not-hit', { size: 12 * MiB + 5 });
    expect(store.url).toBe(`s3://${s3TestConfig().bucket}/${FILE_PREFIX}/specific`);
  });

  it('a transfer aborted midway stops every part and reports ABORTED', async () => {
    const file = join(scratch, 'abort-mid');
    await writeFile(file, randomBytes(12 * MiB));
    const up = new AbortController();
    await expectCode(store.uploadFile('abort/up', file, { signal: up.signal, onBytes: () => up.abort() }), 'ABORTED');
    await expectCode(store.head('abort/up'), 'NOT_FOUND');
    await store.uploadFile('abort/src', file);
    const down = new AbortController();
    let seen = 0;
    const res = store.downloadFile('abort/src', join(scratch, 'abort-mid.out'), {
      signal: down.signal,
      onBytes: (d) => {
        seen += d;
        if (seen > MiB) down.abort();
      },
    });
    await expectCode(res, 'ABORTED');
    expect(seen).toBeLessThan(12 * MiB);
  });

  it('maps a missing bucket and bad credentials to STORE_FAILED (not retryable)', async () => {
    const s3 = s3TestConfig();
    const noBucket = new S3ObjectStore({ bucket: 'cairn-no-such-bucket', endpoint: s3.endpoint, maxAttempts: 1 });
    await expectCode(noBucket.put('x', 'y'), 'STORE_FAILED');
    await noBucket.close();
    const badCreds = new S3ObjectStore({
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      maxAttempts: 1,
      credentials: { accessKeyId: 'nobody', secretAccessKey: 'wrong-secret' },
    });
    const err = await badCreds.head('x').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_FAILED', retryable: false });
    await badCreds.close();
  });
});

describe('the S3 backend is the one retry layer for its requests (unreachable endpoint)', () => {
  // Port 1 on loopback: connection refused at once, no waiting on timeouts.
  const DEAD = 'http://127.0.0.1:1';
  const fastBackoff = { baseDelayMs: 1, maxDelayMs: 5 };

  it('retries each request maxAttempts times, then fails for good (not retryable), reporting every retry', async () => {
    const retries: RetryInfo[] = [];
    const settled: AttemptsInfo[] = [];
    const dead = new S3ObjectStore({
      bucket: 'cairn-test',
      endpoint: DEAD,
      maxAttempts: 4,
      backoff: fastBackoff,
      hooks: { onRetry: (i) => retries.push(i), onAttempts: (i) => settled.push(i) },
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const err = await dead.head('anything').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: false, details: { attempts: 4 } });
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    expect(retries.every((r) => r.op === 'head' && r.delayMs <= 5)).toBe(true);
    expect(settled).toEqual([{ op: 'head', key: 'anything', attempts: 4, outcome: 'STORE_UNAVAILABLE' }]);
    retries.length = 0;
    await expectCode(collect(dead.list('')), 'STORE_UNAVAILABLE');
    expect(retries).toHaveLength(3);
    await dead.close();
  });

  it('createStore adds no second retry layer: attempts are the configured ones, counted in the metrics', async () => {
    const s3 = s3TestConfig();
    const config = { ...s3StoreConfig(`${FILE_PREFIX}/dead`), endpoint: DEAD, maxAttempts: 3 };
    const registry = new Registry();
    const store = createStore(config, { retry: fastBackoff, registry, s3: { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: 'x' } } });
    const err = await store.get('k').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: false, details: { attempts: 3 } });
    expect(store.snapshot().retries).toEqual({ get: 2 });
    expect(store.snapshot().attempts).toEqual({ get: { requests: 1, attempts: 3 } });
    expect(store.snapshot().requests.get).toEqual({ STORE_UNAVAILABLE: 1 });
    const text = await registry.metrics();
    expect(text).toContain('cairn_store_retries_total{backend="s3",op="get"} 2');
    expect(text).toContain('cairn_store_request_attempts_sum{backend="s3",op="get"} 3');
    // retry: false is one attempt.
    const once = createStore(config, { retry: false, s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } });
    expect(await once.head('k').then(() => undefined, (e: unknown) => e)).toMatchObject({ code: 'STORE_UNAVAILABLE', details: { attempts: 1 } });
    expect(once.snapshot().retries).toEqual({});
    await store.close();
    await once.close();
  });
});

/** A view of a store under a sub-prefix (to run the suite on a prefix-less S3 store safely). */
function prefixed(inner: ObjectStore, sub: string): ObjectStore {
  const k = (key: string) => `${sub}/${key}`;
  const strip = (key: string) => key.slice(sub.length + 1);
  return {
    capabilities: inner.capabilities,
    url: `${inner.url}/${sub}`,
    get: (key, o) => inner.get(k(key), o),
    head: async (key) => ({ ...(await inner.head(k(key))), key }),
    put: (key, body, o) => inner.put(k(key), body, o),
    uploadFile: (key, path, o) => inner.uploadFile(k(key), path, o),
    downloadFile: (key, path, o) => inner.downloadFile(k(key), path, o),
    copy: (from, to, o) => inner.copy(k(from), k(to), o),
    delete: (keys) => inner.delete(keys.map(k)),
    tag: (key, tags) => inner.tag(k(key), tags),
    list: async function* (prefix) {
      for await (const o of inner.list(k(prefix))) yield { ...o, key: strip(o.key) };
    },
    listFolders: (prefix) => inner.listFolders(k(prefix)),
    close: () => inner.close(),
  };
}
