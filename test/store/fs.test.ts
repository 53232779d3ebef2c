import { spawn, spawnSync } from 'node:child_process';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import { normaliseConfig } from '../../src/core/config.js';
import { createStore, FsObjectStore } from '../../src/store/index.js';
import { expectCode, it, makeTempDir, removeDir } from '../helpers/fixtures.js';
import { collect, runStoreConformance } from '../../src/testing/store-conformance.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');

runStoreConformance('fs', async () => {
  const root = await makeTempDir('fs-store');
  return { store: new FsObjectStore({ root }), cleanup: () => removeDir(root) };
});

runStoreConformance('fs via createStore (retry + metrics wrappers)', async () => {
  const root = await makeTempDir('fs-store');
  const config = normaliseConfig({ store: { url: `file://${root}` } }, root, 'test');
  return { store: createStore(config.store), cleanup: () => removeDir(root) };
});

describe('FsObjectStore specifics', () => {
  it('conditional puts are safe between processes: racing If-Match increments all land', async ({ tmp: root }) => {
    const store = new FsObjectStore({ root });
    await store.put('counter', '0');
    const children = 4;
    const each = 40;
    const runs = Array.from({ length: children }, () => runChild(['--import', 'tsx', join(HERE, 'fixtures/fs-counter-child.ts'), root, 'counter', String(each)]));
    const outputs = await Promise.all(runs);
    const conflicts = outputs.map((o) => (JSON.parse(o) as { conflicts: number }).conflicts).reduce((a, b) => a + b, 0);
    expect((await store.get('counter')).body.toString()).toBe(String(children * each));
    // The race was real: some writers had to re-read (if this ever flakes to 0, raise `each`).
    expect(conflicts).toBeGreaterThan(0);
    expect(await readdir(root)).toEqual(['counter']);
  });

  it('breaks a lock left by a dead process', async ({ tmp: root }) => {
    const store = new FsObjectStore({ root, lockTimeoutMs: 5_000 });
    const { etag } = await store.put('p0/latest.json', '{"lsn":1}');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(store.lockPathOf('p0/latest.json'), JSON.stringify({ pid: dead, host: hostname(), nonce: 'dead', t: Date.now() }));
    const started = Date.now();
    await store.put('p0/latest.json', '{"lsn":2}', { ifMatch: etag });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await store.get('p0/latest.json')).body.toString()).toBe('{"lsn":2}');
    expect(await readdir(join(root, 'p0'))).toEqual(['latest.json']);
  });

  it('waits for a live lock, fails retryably on timeout, and never breaks it while its holder lives', async ({ tmp: root }) => {
    const live = JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'live', t: 0 });
    const impatient = new FsObjectStore({ root, lockTimeoutMs: 200 });
    await writeFile(impatient.lockPathOf('k'), live);
    const err = await impatient.put('k', 'x').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });

    // However old the lock, a live holder keeps it: the patient writer gets in only once
    // the holder lets go.
    const patient = new FsObjectStore({ root, lockTimeoutMs: 10_000 });
    const started = Date.now();
    setTimeout(() => void rm(patient.lockPathOf('k')), 400);
    await patient.put('k', 'y');
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect((await patient.get('k')).body.toString()).toBe('y');
  });

  it('never repeats an ETag for same-size rewrites of a key', async ({ tmp: root }) => {
    const store = new FsObjectStore({ root });
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add((await store.put('same-size', String(i % 10))).etag);
    expect(seen.size).toBe(200);
  });

  it('listing skips temporary and lock files; keys may not use the reserved prefix', async ({ tmp: root }) => {
    const store = new FsObjectStore({ root });
    await store.put('a/obj', 'x');
    await writeFile(join(root, 'a', '.cairn-tmp-deadbeef'), 'partial');
    await writeFile(store.lockPathOf('a/obj'), '{}');
    expect((await collect(store.list(''))).map((o) => o.key)).toEqual(['a/obj']);
    await expectCode(store.put('a/.cairn-lock-x', 'x'), 'BAD_INPUT');
  });

  it('delete removes emptied folders, and writes recreate them', async ({ tmp: root }) => {
    const store = new FsObjectStore({ root });
    await store.put('p/snap/f1', '1');
    await store.put('p/keep', '2');
    await store.delete(['p/snap/f1']);
    await expect(stat(join(root, 'p', 'snap'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(join(root, 'p'))).toEqual(['keep']);
    await store.put('p/snap/f2', '3');
    expect((await store.get('p/snap/f2')).body.toString()).toBe('3');
    expect(store.url).toBe(`file://${root}`);
  });
});

function runChild(args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise(out.trim()) : reject(new Error(`child exited ${code}: ${err}`))));
  });
}
