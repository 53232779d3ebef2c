import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File, sha256Hex } from '../core/checksums.js';
import { expectCode } from './assertions.js';
import type { ObjectInfo, ObjectStore } from '../store/types.js';

/**
 * One behaviour suite for every ObjectStore backend (the abstract-level / OpenDAL habit):
 * a backend is conformant when this passes unchanged. Assertions are on error codes,
 * never on messages. Each test works under its own key prefix inside one store.
 *
 * Behaviour a backend may lack is gated on what it declares in `store.capabilities`, as
 * callers gate on it: conditional writes (`conditionalWrite`), byte ranges (`rangedRead`),
 * copies above a single-request limit (`serverSideCopy`, `maxSingleCopyBytes`), and what a
 * verified copy is held to (`copyVerifies`). A case whose capability is absent is not run
 * (nor listed as skipped), so a store must not claim what it cannot do
 * (capabilities-gating.test.ts shows the gates).
 */
export interface StoreFixture {
  store: ObjectStore;
  cleanup: () => Promise<void>;
  /** Size of the "large" file: big enough to take the backend's multipart path. */
  largeFileBytes?: number;
}

const MiB = 1024 * 1024;

/** Capabilities a backend may lack; the cases needing one are not registered for a store that lacks it. */
export type GatedCapability = 'conditionalWrite' | 'rangedRead' | 'serverSideCopy';
const GATED: GatedCapability[] = ['conditionalWrite', 'rangedRead', 'serverSideCopy'];

/**
 * `lacks`: what the backend declares false. Cases are chosen when the suite is defined (before
 * the store exists), so the declaration is checked against the store's own record by the first
 * case: a store cannot skip a case by claiming less than it reports.
 */
export { expectCode };

export function runStoreConformance(name: string, makeStore: () => Promise<StoreFixture>, lacks: GatedCapability[] = []): void {
  const gated = (capability: GatedCapability) => (lacks.includes(capability) ? () => undefined : (title: string, fn: () => Promise<void>) => it(title, fn));
  describe(`ObjectStore conformance: ${name}`, () => {
    let fx: StoreFixture;
    let store: ObjectStore;
    let scratch: string;
    let n = 0;
    /** A fresh key prefix per test. */
    const p = () => `c${(n++).toString().padStart(3, '0')}`;

    beforeAll(async () => {
      fx = await makeStore();
      store = fx.store;
      scratch = await mkdtemp(join(tmpdir(), 'cairn-conf-'));
    });
    afterAll(async () => {
      await store?.close();
      await fx?.cleanup();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    it('reports capabilities and a url', () => {
      expect(typeof store.capabilities.name).toBe('string');
      expect(typeof store.capabilities.serverSideCopy).toBe('boolean');
      expect(typeof store.capabilities.conditionalWrite).toBe('boolean');
      expect(typeof store.capabilities.rangedRead).toBe('boolean');
      expect(store.capabilities.maxSingleCopyBytes).toBeGreaterThan(0);
      expect(['etag', 'sha256']).toContain(store.capabilities.copyVerifies);
      for (const capability of GATED) expect(store.capabilities[capability], capability).toBe(!lacks.includes(capability));
      expect(store.url).toMatch(/^[a-z0-9]+:\/\//);
    });

    it('put, get and head round-trip bytes, strings and empty objects with one ETag', async () => {
      const k = p();
      const bin = Buffer.from([0, 1, 2, 255, 0, 10, 13]);
      const put = await store.put(`${k}/bin`, bin, { contentType: 'application/octet-stream' });
      expect(put.etag).toMatch(/^[^"]+$/);
      const got = await store.get(`${k}/bin`);
      expect(got.body.equals(bin)).toBe(true);
      expect(got.etag).toBe(put.etag);
      expect(await store.head(`${k}/bin`)).toEqual({ key: `${k}/bin`, size: bin.length, etag: put.etag });

      await store.put(`${k}/text.json`, '{"héllo":"wörld"}');
      expect((await store.get(`${k}/text.json`)).body.toString()).toBe('{"héllo":"wörld"}');

      await store.put(`${k}/empty`, Buffer.alloc(0));
      expect((await store.get(`${k}/empty`)).body.length).toBe(0);
      expect((await store.head(`${k}/empty`)).size).toBe(0);
    });

    it('overwriting changes the ETag', async () => {
      const k = `${p()}/obj`;
      const a = await store.put(k, 'aaaa');
      const b = await store.put(k, 'bbbb');
      expect(b.etag).not.toBe(a.etag);
      expect((await store.get(k)).body.toString()).toBe('bbbb');
    });

    gated('rangedRead')('ranged get returns [start, end) and clamps end to the size', async () => {
      const k = `${p()}/range`;
      const data = randomBytes(1000);
      const { etag } = await store.put(k, data);
      const mid = await store.get(k, { range: { start: 100, end: 250 } });
      expect(mid.body.equals(data.subarray(100, 250))).toBe(true);
      expect(mid.etag).toBe(etag);
      expect((await store.get(k, { range: { start: 0, end: 1 } })).body.equals(data.subarray(0, 1))).toBe(true);
      expect((await store.get(k, { range: { start: 990, end: 5000 } })).body.equals(data.subarray(990))).toBe(true);
      expect((await store.get(k, { range: { start: 500, end: 500 } })).body.length).toBe(0);
      await expectCode(store.get(k, { range: { start: 1000, end: 1010 } }), 'BAD_INPUT');
      await expectCode(store.get(k, { range: { start: 10, end: 5 } }), 'BAD_INPUT');
      await expectCode(store.get(k, { range: { start: -1, end: 5 } }), 'BAD_INPUT');
    });

    it('missing objects are NOT_FOUND everywhere', async () => {
      const k = `${p()}/missing`;
      await expectCode(store.get(k), 'NOT_FOUND');
      if (store.capabilities.rangedRead) await expectCode(store.get(k, { range: { start: 0, end: 10 } }), 'NOT_FOUND');
      await expectCode(store.head(k), 'NOT_FOUND');
      await expectCode(store.downloadFile(k, join(scratch, 'missing.out')), 'NOT_FOUND');
      await expectCode(store.copy(k, `${k}-copy`), 'NOT_FOUND');
      await expectCode(store.copy(k, `${k}-copy`, { size: 10 }), 'NOT_FOUND');
      // A folder is not an object.
      await store.put(`${k}/child`, 'x');
      await expectCode(store.head(k), 'NOT_FOUND');
    });

    it('rejects keys that could escape the root', async () => {
      for (const bad of ['', '../x', 'a/../../x', '/abs', 'a\\b', 'a//b', 'a/./b', 'a/', '..']) {
        await expectCode(store.put(bad, 'x'), 'BAD_INPUT');
        await expectCode(store.get(bad), 'BAD_INPUT');
      }
      await expectCode(store.listFolders('no-trailing-slash'), 'BAD_INPUT');
    });

    gated('conditionalWrite')("ifNoneMatch '*' creates only", async () => {
      const k = `${p()}/create-only`;
      const first = await store.put(k, 'one', { ifNoneMatch: '*' });
      await expectCode(store.put(k, 'two', { ifNoneMatch: '*' }), 'CONDITION_FAILED');
      const now = await store.get(k);
      expect(now.body.toString()).toBe('one');
      expect(now.etag).toBe(first.etag);
    });

    gated('conditionalWrite')('ifMatch writes on the current ETag and fails on a stale or absent one', async () => {
      const k = `${p()}/pointer`;
      const v1 = await store.put(k, 'v1');
      const v2 = await store.put(k, 'v2', { ifMatch: v1.etag });
      expect((await store.get(k)).body.toString()).toBe('v2');
      await expectCode(store.put(k, 'v3', { ifMatch: v1.etag }), 'CONDITION_FAILED');
      expect((await store.get(k)).body.toString()).toBe('v2');
      // Quoted ETags (as HTTP prints them) are the same ETag.
      await store.put(k, 'v3', { ifMatch: `"${v2.etag}"` });
      await expectCode(store.put(`${k}-absent`, 'x', { ifMatch: v1.etag }), 'CONDITION_FAILED');
      await expectCode(store.head(`${k}-absent`), 'NOT_FOUND');
      await expectCode(store.put(k, 'x', { ifMatch: v1.etag, ifNoneMatch: '*' }), 'BAD_INPUT');
    });

    gated('conditionalWrite')('exactly one of N racing conditional puts wins', async () => {
      const k = `${p()}/race`;
      const base = await store.put(k, 'base');
      const N = 8;
      const results = await Promise.allSettled(Array.from({ length: N }, (_, i) => store.put(k, `writer-${i}`, { ifMatch: base.etag })));
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(codeOf(r.reason)).toBe('CONDITION_FAILED');
      expect((await store.get(k)).body.toString()).toBe(`writer-${won[0]}`);

      const fresh = `${k}-fresh`;
      const creates = await Promise.allSettled(Array.from({ length: N }, (_, i) => store.put(fresh, `c-${i}`, { ifNoneMatch: '*' })));
      expect(creates.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of creates) if (r.status === 'rejected') expect(codeOf(r.reason)).toBe('CONDITION_FAILED');
    });

    it('uploadFile / downloadFile move small and empty files intact, reporting progress', async () => {
      const k = p();
      for (const size of [0, 1, 70_000]) {
        const src = join(scratch, `small-${size}`);
        await writeFile(src, randomBytes(size));
        let up = 0;
        const res = await store.uploadFile(`${k}/f${size}`, src, { onBytes: (d) => (up += d) });
        expect(res.size).toBe(size);
        expect(up).toBe(size);
        expect((await store.head(`${k}/f${size}`)).etag).toBe(res.etag);
        const dst = join(scratch, `small-${size}.out`);
        let down = 0;
        expect(await store.downloadFile(`${k}/f${size}`, dst, { onBytes: (d) => (down += d) })).toEqual({ size });
        expect(down).toBe(size);
        expect(await sha256(dst)).toBe(await sha256(src));
        // An in-stream digest is optional, but when a backend returns one it must be right.
        const digested = await store.downloadFile(`${k}/f${size}`, `${dst}.2`, { sha256: true });
        expect(digested.size).toBe(size);
        if (digested.sha256 !== undefined) expect(digested.sha256).toBe(await sha256(src));
      }
    });

    it('uploadFile / downloadFile move a multipart-size file intact', async () => {
      const k = `${p()}/large`;
      const size = fx.largeFileBytes ?? 13 * MiB + 12_345;
      const src = join(scratch, 'large');
      await writeFile(src, randomBytes(size));
      let up = 0;
      const res = await store.uploadFile(k, src, { onBytes: (d) => (up += d) });
      expect(res.size).toBe(size);
      expect(up).toBe(size);
      expect(await store.head(k)).toEqual({ key: k, size, etag: res.etag });
      const dst = join(scratch, 'large.out');
      // Existing, longer content must not survive (the file is truncated first).
      await writeFile(dst, randomBytes(size + 4096));
      let down = 0;
      expect((await store.downloadFile(k, dst, { onBytes: (d) => (down += d) })).size).toBe(size);
      expect(down).toBe(size);
      expect((await stat(dst)).size).toBe(size);
      expect(await sha256(dst)).toBe(await sha256(src));
      const digested = await store.downloadFile(k, `${dst}.2`, { sha256: true });
      if (digested.sha256 !== undefined) expect(digested.sha256).toBe(await sha256(src));
      // Ranged reads across a part boundary see the same bytes.
      if (store.capabilities.rangedRead) {
        const whole = await readFile(src);
        const r = await store.get(k, { range: { start: 5 * MiB - 10, end: 5 * MiB + 10 } });
        expect(r.body.equals(whole.subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true);
      }
      await rm(src);
      await rm(dst);
    });

    it('honours an aborted signal on transfers', async () => {
      const k = `${p()}/aborted`;
      const src = join(scratch, 'abort-src');
      await writeFile(src, 'abc');
      const signal = AbortSignal.abort();
      await expectCode(store.uploadFile(k, src, { signal }), 'ABORTED');
      await store.put(k, 'abc');
      await expectCode(store.downloadFile(k, join(scratch, 'abort-dst'), { signal }), 'ABORTED');
    });

    it('copy duplicates without touching the source and replaces the target', async () => {
      const k = p();
      const data = randomBytes(4096);
      const src = await store.put(`${k}/src`, data);
      await store.put(`${k}/dst`, 'old');
      await store.copy(`${k}/src`, `${k}/dst`, { size: data.length });
      await store.copy(`${k}/src`, `${k}/dst2`);
      for (const key of [`${k}/dst`, `${k}/dst2`]) expect((await store.get(key)).body.equals(data)).toBe(true);
      expect(await store.head(`${k}/src`)).toEqual({ key: `${k}/src`, size: data.length, etag: src.etag });
      await store.copy(`${k}/src`, `${k}/src`);
      expect((await store.get(`${k}/src`)).body.equals(data)).toBe(true);
    });

    it('copy returns the target ETag, and copies only a source that is still what was recorded', async () => {
      const k = p();
      const data = randomBytes(4096);
      const src = await store.put(`${k}/src`, data);
      // What the store can hold a copy to decides what the caller records.
      const recorded = store.capabilities.copyVerifies === 'etag' ? { etag: src.etag } : { sha256: sha256Hex(data) };
      const copied = await store.copy(`${k}/src`, `${k}/dst`, { size: data.length, expect: recorded });
      expect(copied.etag).toBe((await store.head(`${k}/dst`)).etag);
      // The object is replaced by other bytes of the same size (a damaged or rewritten object).
      const other = Buffer.from(data);
      other[100] = other[100]! ^ 0xff;
      await store.put(`${k}/src`, other);
      await expectCode(store.copy(`${k}/src`, `${k}/dst2`, { size: data.length, expect: recorded }), 'CORRUPT');
      await expectCode(store.head(`${k}/dst2`), 'NOT_FOUND');
      await expectCode(store.copy(`${k}/src`, `${k}/src`, { expect: recorded }), 'CORRUPT');
    });

    gated('serverSideCopy')('copy handles objects above the single-copy threshold (in parts where the backend needs them)', async () => {
      // The single-request limit and part copies are server-side copy behaviour; a store that
      // copies through this process has no such threshold.
      const k = p();
      const limit = store.capabilities.maxSingleCopyBytes;
      // Only feasible where the backend lets the test lower the threshold.
      const size = limit <= 64 * MiB ? limit + 3 * MiB + 17 : 11 * MiB + 17;
      const file = join(scratch, 'copy-big');
      await writeFile(file, randomBytes(size));
      await store.uploadFile(`${k}/src`, file);
      const recorded = store.capabilities.copyVerifies === 'etag' ? { etag: (await store.head(`${k}/src`)).etag } : { sha256: await sha256(file) };
      await store.copy(`${k}/src`, `${k}/dst`, { size, expect: recorded });
      await store.copy(`${k}/src`, `${k}/dst-nosize`);
      await expectCode(store.copy(`${k}/src`, `${k}/dst-wrong`, { size, expect: store.capabilities.copyVerifies === 'etag' ? { etag: 'ffffffffffffffffffffffffffffffff' } : { sha256: '0'.repeat(64) } }), 'CORRUPT');
      for (const key of [`${k}/dst`, `${k}/dst-nosize`]) {
        expect((await store.head(key)).size).toBe(size);
        const out = join(scratch, 'copy-big.out');
        await store.downloadFile(key, out);
        expect(await sha256(out)).toBe(await sha256(file));
        await rm(out);
      }
      await rm(file);
    });

    it('list returns every object under a prefix in key order, with size and ETag', async () => {
      const k = p();
      const keys = ['a/b', 'a-c', 'a/c/d', 'a0', 'aa', 'b', 'a/c/e.json', 'z/y/x/w'].map((s) => `${k}/${s}`);
      const shuffled = [...keys].sort(() => Math.random() - 0.5);
      for (const key of shuffled) await store.put(key, key);
      const sorted = [...keys].sort();
      const all = await collect(store.list(`${k}/`));
      expect(all.map((o) => o.key)).toEqual(sorted);
      for (const o of all) expect(o).toEqual(await store.head(o.key));
      expect((await collect(store.list(`${k}/a/`))).map((o) => o.key)).toEqual(sorted.filter((s) => s.startsWith(`${k}/a/`)));
      expect((await collect(store.list(`${k}/a`))).map((o) => o.key)).toEqual(sorted.filter((s) => s.startsWith(`${k}/a`)));
      expect((await collect(store.list(`${k}/a/c/e`))).map((o) => o.key)).toEqual([`${k}/a/c/e.json`]);
      expect(await collect(store.list(`${k}/nothing`))).toEqual([]);
      expect(await collect(store.list(`${k}-not-a-prefix-in-use/`))).toEqual([]);
    });

    it('listFolders returns the next path segments that hold objects', async () => {
      const k = p();
      for (const key of ['f1/x', 'f1/y/z', 'f2/x', 'file', 'f0/deep/er/obj']) await store.put(`${k}/${key}`, 'x');
      expect(await store.listFolders(`${k}/`)).toEqual(['f0', 'f1', 'f2']);
      expect(await store.listFolders(`${k}/f1/`)).toEqual(['y']);
      expect(await store.listFolders(`${k}/f2/`)).toEqual([]);
      expect(await store.listFolders(`${k}/none/`)).toEqual([]);
      expect(await store.listFolders('')).toContain(k.split('/')[0]);
      await store.delete([`${k}/f0/deep/er/obj`]);
      expect(await store.listFolders(`${k}/`)).toEqual(['f1', 'f2']);
    });

    it('delete is idempotent, ignores absent keys and handles more than 1000 keys', async () => {
      const k = p();
      await store.put(`${k}/one`, '1');
      await store.put(`${k}/two`, '2');
      await store.delete([`${k}/one`, `${k}/never-existed`]);
      await expectCode(store.head(`${k}/one`), 'NOT_FOUND');
      expect((await store.get(`${k}/two`)).body.toString()).toBe('2');
      await store.delete([`${k}/one`]);
      await store.delete([]);

      const many = Array.from({ length: 1005 }, (_, i) => `${k}/many/${i.toString().padStart(5, '0')}`);
      for (let i = 0; i < many.length; i += 50) await Promise.all(many.slice(i, i + 50).map((key) => store.put(key, 'm')));
      expect((await collect(store.list(`${k}/many/`))).map((o) => o.key)).toEqual(many);
      await store.delete([...many, `${k}/two`]);
      expect(await collect(store.list(`${k}/`))).toEqual([]);
      expect(await store.listFolders(`${k}/`)).toEqual([]);
    });
  });
}

export function codeOf(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

export async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out;
}

export async function sha256(path: string): Promise<string> {
  return (await sha256File(path)).sha256;
}

