import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSnapshotId } from '../../src/core/ids.js';
import { currentProcess } from '../../src/core/process-identity.js';
import { layout } from '../../src/snapshots/layout.js';
import { publishPointer } from '../../src/snapshots/pointer-update.js';
import { readLatest } from '../../src/snapshots/pointer.js';
import type { RetainedEntry } from '../../src/snapshots/schemas.js';
import { FsObjectStore } from '../../src/store/fs/store.js';
import type { ChildJob } from '../helpers/race-child.js';
import { removeDir, tempDir } from '../helpers/snapshot-fixtures.js';

/**
 * The filesystem store's conditional write stays atomic with respect to its check however
 * long the writer pauses between the two. A real process is stopped with SIGSTOP at a
 * failpoint right after its If-Match check (as a GC pause, a debugger or a frozen VM would
 * stop it) for longer than the 30 s after which the lock used to count as stale; meanwhile
 * another writer publishes a higher LSN. The pointer must never go back when it resumes.
 */

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CHILD = join(ROOT, 'test/helpers/race-child.ts');
const P = 'p0';

function entry(lsn: number): RetainedEntry {
  const snapshotId = newSnapshotId();
  return { snapshotId, lsn, path: layout.snapshotPath(P, snapshotId, lsn), createdAt: new Date().toISOString() };
}

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function startPausedPublisher(job: ChildJob): { pid: number; result: Promise<unknown> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, CAIRN_FAILPOINTS: 'fs-conditional-put:checked=stop' },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let last: string | undefined;
  createInterface({ input: child.stdout }).on('line', (l) => {
    if (l === 'ready') child.stdin.end('go\n');
    else if (l.startsWith('{')) last = l;
  });
  const result = new Promise((resolvePromise, reject) => {
    child.on('close', (code) => (last ? resolvePromise(JSON.parse(last)) : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
  return { pid: child.pid!, result };
}

describe('fs store: a paused conditional writer keeps its lock', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('fs-pause');
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  it('a writer stopped for 32 s between its If-Match check and its rename cannot move latest.json back', { timeout: 120_000 }, async () => {
    const root = join(dir, 'store');
    const store = new FsObjectStore({ root, lockTimeoutMs: 90_000 });
    await publishPointer(store, P, entry(499), { retain: 3 });

    const paused = startPausedPublisher({ kind: 'publish', root, partition: P, entry: entry(999), retain: 3 });
    await waitFor('the publisher to stop at its failpoint', () => processState(paused.pid) === 'T');

    // Another worker publishes a newer snapshot while the first one is frozen mid-write.
    const seen: number[] = [];
    const newer = publishPointer(store, P, entry(1999), { retain: 3 });
    const watch = setInterval(() => {
      void readLatest(store, P).then((r) => r && seen.push(r.pointer.lsn), () => undefined);
    }, 250);
    try {
      await sleep(32_000);
      process.kill(paused.pid, 'SIGCONT');
      expect(await paused.result).toMatchObject({ done: { status: 'published' } });
      expect((await newer).status).toBe('published');
    } finally {
      clearInterval(watch);
    }

    const final = await readLatest(store, P);
    expect(final?.pointer.lsn).toBe(1999);
    expect(final?.pointer.retained.map((e) => e.lsn)).toEqual([1999, 999, 499]);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!);
  });

  it('breaks a lock whose pid now belongs to another process (pid reuse), at once', async () => {
    const root = join(dir, 'reuse');
    const store = new FsObjectStore({ root, lockTimeoutMs: 5_000 });
    const { etag } = await store.put('k', 'a');
    // Our own pid, but a start time no process with this pid ever had.
    await writeFile(store.lockPathOf('k'), JSON.stringify({ ...currentProcess(), start: '1', nonce: 'old', t: Date.now() }));
    await store.put('k', 'b', { ifMatch: etag });
    expect((await store.get('k')).body.toString()).toBe('b');
  });

  it('never breaks a lock held from another host: fails retryably and names the holder', async () => {
    const root = join(dir, 'other-host');
    const store = new FsObjectStore({ root, lockTimeoutMs: 300 });
    await store.put('k', 'a');
    await writeFile(store.lockPathOf('k'), JSON.stringify({ host: `not-${hostname()}`, pid: 1, nonce: 'x', t: 0 }));
    const err = await store.put('k', 'b').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
    expect((await store.get('k')).body.toString()).toBe('a');
  });
});
