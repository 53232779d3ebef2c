import { STORE_DEFAULTS } from '../../src/core/defaults.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { WrappedObjectStore, type StoreCall } from '../../src/store/forwarding.js';
import type { UploadOptions, UploadResult } from '../../src/store/types.js';
import { createStore, FsObjectStore, withMetrics, withRetry, type AttemptsInfo, type ObjectInfo, type ObjectStore, type RetryInfo } from '../../src/store/index.js';
import { collect, expectCode } from '../../src/testing/store-conformance.js';

/**
 * The retry wrapper (the one retry layer over backends that do not retry themselves) and the
 * metrics wrapper on top of the fs store, with failures injected by a thin
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
class Failing extends WrappedObjectStore {
  constructor(
    inner: ObjectStore,
    private readonly failures: Record<string, number>,
    private readonly options: { after?: boolean; listFailAt?: number },
  ) {
    super(inner);
  }

  protected override async around<T>(call: StoreCall, run: (attempt: number) => Promise<T>): Promise<T> {
    if ((this.failures[call.op] ?? 0) > 0) {
      this.failures[call.op]!--;
      if (this.options.after) await run(1);
      throw unavailable();
    }
    return run(1);
  }

  /** A listing that breaks after `listFailAt` objects. */
  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let i = 0;
    for await (const o of this.inner.list(prefix)) {
      if (i++ === this.options.listFailAt && (this.failures.list ?? 0) > 0) {
        this.failures.list!--;
        throw unavailable();
      }
      yield o;
    }
  }
}

function faulty(inner: ObjectStore, failures: Record<string, number>, options: { after?: boolean; listFailAt?: number } = {}): ObjectStore {
  return new Failing(inner, failures, options);
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

  it('gives up after `attempts` with a final (not retryable) error, and never retries non-retryable errors', async () => {
    const seen: RetryInfo[] = [];
    const settled: AttemptsInfo[] = [];
    const store = withRetry(faulty(fs, { head: 10 }), { ...fast, attempts: 3, onRetry: (i) => seen.push(i), onAttempts: (i) => settled.push(i) });
    const err = await store.head('k').then(() => undefined, (e: unknown) => e);
    // Nothing above the one retry layer may retry again: the outage is reported as final.
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: false, details: { attempts: 3 } });
    expect(seen).toHaveLength(2);
    expect(settled).toEqual([{ op: 'head', key: 'k', attempts: 3, outcome: 'STORE_UNAVAILABLE' }]);
    seen.length = 0;
    // One attempt (retry: false in createStore) is final too.
    const once = withRetry(faulty(fs, { get: 1 }), { ...fast, attempts: 1, onRetry: (i) => seen.push(i) });
    expect(await once.get('k').then(() => undefined, (e: unknown) => e)).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: false, details: { attempts: 1 } });
    expect(seen).toHaveLength(0);
    await expectCode(store.get('missing'), 'NOT_FOUND');
    const { etag } = await store.put('c', '1');
    await store.put('c', '2');
    await expectCode(store.put('c', '3', { ifMatch: etag }), 'CONDITION_FAILED');
    expect(seen).toHaveLength(0);
  });

  it('an aborted signal stops the retries with ABORTED', async () => {
    const file = join(root, 'abort.bin');
    await writeFile(file, 'x');
    const controller = new AbortController();
    const store = withRetry(faulty(fs, { uploadFile: 10 }), { attempts: 4, baseDelayMs: 60_000, maxDelayMs: 60_000, onRetry: () => controller.abort() });
    const started = Date.now();
    await expectCode(store.uploadFile('u', file, { signal: controller.signal }), 'ABORTED');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('retries only store outages: a full disk or a lost condition surfaces at once, unchanged', async () => {
    const seen: RetryInfo[] = [];
    const full = new CairnError('DISK_FULL', 'injected full disk');
    const store = withRetry({ ...faulty(fs, {}), get: () => Promise.reject(full) }, { ...fast, onRetry: (i) => seen.push(i) });
    expect(await store.get('k').then(() => undefined, (e: unknown) => e)).toBe(full);
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
    let attempted = false;
    const flaky = new (class extends WrappedObjectStore {
      override async uploadFile(k: string, p: string, o?: UploadOptions): Promise<UploadResult> {
        if (!attempted) {
          attempted = true;
          o?.onBytes?.(600);
          throw unavailable();
        }
        return fs.uploadFile(k, p, o);
      }
    })(fs);
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

  it('createStore wires retries and attempts per request into the metrics', async () => {
    const registry = new Registry();
    const store = createStore({ kind: 'fs', url: `file://${root}`, root, ...STORE_DEFAULTS }, { retry: fast, registry });
    await store.put('x', 'y');
    expect(store.snapshot().requests.put).toEqual({ ok: 1 });
    expect(store.snapshot().retries).toEqual({});
    expect(store.snapshot().attempts.put).toEqual({ requests: 1, attempts: 1 });
    // A lock held by a live process: each attempt times out (retryably), the one retry layer
    // retries it, and the metrics show it.
    const held = createStore({ kind: 'fs', url: `file://${root}`, root, ...STORE_DEFAULTS, maxAttempts: 2 }, { retry: { baseDelayMs: 1, maxDelayMs: 2 }, fs: { lockTimeoutMs: 50 }, registry });
    await writeFile(fs.lockPathOf('x'), JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'live', t: 0 }));
    expect(await held.put('x', 'z').then(() => undefined, (e: unknown) => e)).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: false, details: { attempts: 2 } });
    expect(held.snapshot().retries).toEqual({ put: 1 });
    expect(held.snapshot().attempts.put).toEqual({ requests: 1, attempts: 2 });
    const text = await registry.metrics();
    expect(text).toContain('cairn_store_retries_total{backend="fs",op="put"} 1');
    expect(text).toContain('cairn_store_request_attempts_bucket{le="2",backend="fs",op="put"} 2');
    const noRetry = createStore({ kind: 'fs', url: `file://${root}`, root, ...STORE_DEFAULTS }, { retry: false });
    expect((await noRetry.get('x')).body.toString()).toBe('y');
  });
});
