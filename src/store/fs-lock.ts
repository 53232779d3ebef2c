import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError } from '../core/errors.js';

/**
 * A lock file per key, so conditional writes are atomic between processes on one machine
 * (the embedded store's only concurrency story; S3 does this server-side).
 *
 * The lock is a file created with O_EXCL holding `{pid, host, nonce, t}`. A lock whose
 * holder is dead (same host, pid gone) or that is older than `staleMs` is broken. Breaking
 * is itself guarded by a short-lived `.break` lock and re-checks the lock's content under
 * it, so two breakers can never delete a fresh lock that a third process just took.
 */
export interface LockOptions {
  /** A lock older than this is considered abandoned (the critical section is milliseconds). */
  staleMs: number;
  /** Give up (STORE_UNAVAILABLE, retryable) after waiting this long. */
  timeoutMs: number;
}

interface LockContent {
  pid: number;
  host: string;
  nonce: string;
  t: number;
}

const HOST = hostname();

export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock at `path`; resolves to a release function. */
export async function acquireFileLock(path: string, options: LockOptions): Promise<() => Promise<void>> {
  const content: LockContent = { pid: process.pid, host: HOST, nonce: randomBytes(8).toString('hex'), t: Date.now() };
  const text = JSON.stringify(content);
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (await tryCreate(path, text)) {
      return () => releaseIfOurs(path, text);
    }
    const seen = await inspect(path);
    if (seen === undefined) continue; // released between our create and our read: try again now
    if (isStale(seen, options.staleMs)) {
      await breakLock(path, seen);
      continue;
    }
    if (Date.now() > deadline) {
      throw new CairnError('STORE_UNAVAILABLE', `timed out after ${options.timeoutMs}ms waiting for lock ${path}`, {
        details: { lock: path, holder: seen.text },
      });
    }
    // Short, jittered polls: the critical section is a stat and a rename.
    await sleep(Math.min(50, 1 + 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
  }
}

async function tryCreate(path: string, text: string): Promise<boolean> {
  for (let i = 0; ; i++) {
    try {
      const fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
      try {
        await fh.writeFile(text);
      } finally {
        await fh.close();
      }
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      // The folder may have just been removed by a delete that pruned empty parents.
      if (code === 'ENOENT' && i < 5) {
        await mkdir(dirname(path), { recursive: true });
        continue;
      }
      throw err;
    }
  }
}

interface Seen {
  text: string;
  parsed: LockContent | undefined;
  mtimeMs: number;
}

async function inspect(path: string): Promise<Seen | undefined> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    let parsed: LockContent | undefined;
    try {
      parsed = JSON.parse(text) as LockContent;
    } catch {
      parsed = undefined;
    }
    return { text, parsed, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function isStale(seen: Seen, staleMs: number): boolean {
  const age = Date.now() - seen.mtimeMs;
  if (age > staleMs) return true;
  // Empty or torn content: the holder died between creating and writing the file. A live
  // holder writes within microseconds, so a second's grace is plenty.
  if (!seen.parsed) return age > 1000;
  return seen.parsed.host === HOST && !pidAlive(seen.parsed.pid);
}

async function breakLock(path: string, seen: Seen): Promise<void> {
  const breaker = `${path}.break`;
  if (!(await tryCreate(breaker, String(process.pid)))) {
    // Someone else is breaking it. A breaker that died mid-way leaves its file: drop it
    // once old (breaking takes milliseconds), then let the caller poll again.
    const b = await inspect(breaker);
    if (b && Date.now() - b.mtimeMs > 5000) await unlinkQuiet(breaker);
    else await sleep(2);
    return;
  }
  try {
    const now = await inspect(path);
    // Only the exact lock we judged stale may go; a new holder writes a different nonce.
    if (now && now.text === seen.text) await unlinkQuiet(path);
  } finally {
    await unlinkQuiet(breaker);
  }
}

async function releaseIfOurs(path: string, text: string): Promise<void> {
  const now = await inspect(path);
  // If we were paused past staleMs and someone broke our lock, theirs is not ours to drop.
  if (now && now.text === text) await unlinkQuiet(path);
}

async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
