import { STORE_DEFAULTS } from '../../src/core/config.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { createStore, FsObjectStore, withMetrics, withRetry, type ObjectInfo, type ObjectStore, type RetryInfo } from '../../src/store/index.js';
import { collect, expectCode } from './conformance.js';

/**
 * The retry and metrics wrappers on top of the fs store, with failures injected by a thin
 * wrapper (a fault injector over a real store, not a stand-in for one).
 */
let root: string;
let fs: FsObjectStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cairn-wrappers-'));
  fs = new FsObjectStore({ root });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const fast = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 };
const unavailable = () => new CairnError('STORE_UNAVAILABLE', 'injected outage');

/** Fails the next `failures[op]` calls of each op; `after` runs the real call first, then fails. */
function faulty(inner: ObjectStore, failures: Record<string, number>, options: { after?: boolean; listFailAt?: number } = {}): ObjectStore {
  const fail = async <T>(op: string, real: () => Promise<T>): Promise<T> => {
    if ((failures[op] ?? 0) > 0) {
      failures[op]!--;
      if (options.after) await real();
      throw unavailable();
    }
    return real();
  };
  return {
    capabilities: inner.capabilities,
    url: inner.url,
    get: (k, o) => fail('get', () => inner.get(k, o)),
    head: (k) => fail('head', () => inner.head(k)),
    put: (k, b, o) => fail('put', () => inner.put(k, b, o)),
    uploadFile: (k, p, o) => fail('uploadFile', () => inner.uploadFile(k, p, o)),
    downloadFile: (k, p, o) => fail('downloadFile', () => inner.downloadFile(k, p, o)),
    copy: (a, b, o) => fail('copy', () => inner.copy(a, b, o)),
    delete: (k) => fail('delete', () => inner.delete(k)),
    list: async function* (prefix): AsyncGenerator<ObjectInfo> {
      let i = 0;
      for await (const o of inner.list(prefix)) {
        if (i++ === options.listFailAt && (failures.list ?? 0) > 0) {
          failures.list!--;
          throw unavailable();
        }
        yield o;
      }
    },
    listFolders: (p) => fail('listFolders', () => inner.listFolders(p)),
    close: () => inner.close(),
  };
}

describe('withRetry', () => {
  it('retries retryable errors with bounded backoff and then succeeds', async () => {
    await fs.put('k', 'v');
    const seen: RetryInfo[] = [];
    const store = withRetry(faulty(fs, { get: 2 }), { ...fast, onRetry: (i) => seen.push(i) });
    expect((await store.get('k')).body.toString()).toBe('v');
    expect(seen.map((s) => [s.op, s.key, s.attempt, s.error.code])).toEqual([
      ['get', 'k', 1, 'STORE_UNAVAILABLE'],
      ['get', 'k', 2, 'STORE_UNAVAILABLE'],
    ]);
    expect(seen.every((s) => s.delayMs >= 0 && s.delayMs <= 2)).toBe(true);
  });

  it('gives up after `attempts` and never retries non-retryable errors', async () => {
    const seen: RetryInfo[] = [];
    const store = withRetry(faulty(fs, { head: 10 }), { ...fast, attempts: 3, onRetry: (i) => seen.push(i) });
    await expectCode(store.head('k'), 'STORE_UNAVAILABLE');
    expect(seen).toHaveLength(2);
    seen.length = 0;
    await expectCode(store.get('missing'), 'NOT_FOUND');
    const { etag } = await store.put('c', '1');
    await store.put('c', '2');
    await expectCode(store.put('c', '3', { ifMatch: etag }), 'CONDITION_FAILED');
    expect(seen).toHaveLength(0);
  });

  it('a conditional put whose first attempt landed is recognised as ours', async () => {
    const { etag } = await fs.put('latest.json', '{"lsn":1}');
    const store = withRetry(faulty(fs, { put: 1 }, { after: true }), fast);
    const res = await store.put('latest.json', '{"lsn":2}', { ifMatch: etag });
    expect(res.etag).toBe((await fs.head('latest.json')).etag);
    // ... but a real loss still surfaces.
    const lost = withRetry(faulty(fs, { put: 1 }, { after: true }), fast);
    await fs.put('other.json', 'someone else');
    await expectCode(lost.put('other.json', 'mine', { ifNoneMatch: '*' }), 'CONDITION_FAILED');
  });

  it('list resumes after the last yielded key without duplicates', async () => {
    for (const k of ['a', 'b', 'c', 'd']) await fs.put(`l/${k}`, k);
    const store = withRetry(faulty(fs, { list: 1 }, { listFailAt: 2 }), fast);
    expect((await collect(store.list('l/'))).map((o) => o.key)).toEqual(['l/a', 'l/b', 'l/c', 'l/d']);
  });

  it('progress is not double-counted across attempts', async () => {
    const file = join(root, 'src.bin');
    await writeFile(file, Buffer.alloc(1000, 7));
    const flaky: ObjectStore = {
      ...faulty(fs, {}),
      uploadFile: async (k, p, o) => {
        if (!attempted) {
          attempted = true;
          o?.onBytes?.(600);
          throw unavailable();
        }
        return fs.uploadFile(k, p, o);
      },
    };
    let attempted = false;
    let total = 0;
    await withRetry(flaky, fast).uploadFile('u', file, { onBytes: (d) => (total += d) });
    expect(total).toBe(1000);
  });
});

describe('withMetrics', () => {
  it('counts operations by outcome and bytes moved, as a snapshot and as prom-client metrics', async () => {
    const registry = new Registry();
    const store = withMetrics(fs, registry);
    expect(store.capabilities).toBe(fs.capabilities);
    expect(store.url).toBe(fs.url);
    await store.put('a', 'hello');
    await store.get('a');
    await expectCode(store.head('nope'), 'NOT_FOUND');
    await store.copy('a', 'b', { size: 5 });
    const file = join(root, 'up');
    await writeFile(file, Buffer.alloc(100));
    await store.uploadFile('c', file);
    await store.downloadFile('c', join(root, 'down'));
    await collect(store.list(''));
    const snap = store.snapshot();
    expect(snap.requests).toMatchObject({
      put: { ok: 1 },
      get: { ok: 1 },
      head: { NOT_FOUND: 1 },
      copy: { ok: 1 },
      uploadFile: { ok: 1 },
      downloadFile: { ok: 1 },
      list: { ok: 1 },
    });
    expect(snap).toMatchObject({ uploadedBytes: 105, downloadedBytes: 105, copiedBytes: 5 });
    const text = await registry.metrics();
    expect(text).toContain('cairn_store_requests_total{backend="fs",op="head",outcome="NOT_FOUND"} 1');
    expect(text).toContain('cairn_store_uploaded_bytes_total{backend="fs"} 105');
    expect(text).toContain('cairn_store_copied_bytes_total{backend="fs"} 5');
    expect(text).toContain('cairn_store_request_duration_seconds_bucket');
    // A second store on the same registry shares the metrics instead of throwing.
    withMetrics(new FsObjectStore({ root }), registry);
  });

  it('createStore wires retries into the metrics', async () => {
    const store = createStore({ kind: 'fs', url: `file://${root}`, root, ...STORE_DEFAULTS }, { retry: fast });
    await store.put('x', 'y');
    expect(store.snapshot().requests.put).toEqual({ ok: 1 });
    expect(store.snapshot().retries).toEqual({});
    const noRetry = createStore({ kind: 'fs', url: `file://${root}`, root, ...STORE_DEFAULTS }, { retry: false });
    expect((await noRetry.get('x')).body.toString()).toBe('y');
  });
});
