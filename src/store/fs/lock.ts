import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sleepBackoff, type BackoffPolicy } from '../../core/backoff.js';
import { CairnError } from '../../core/errors.js';
import { currentProcess, liveness, type ProcessIdentity } from '../../core/process-identity.js';

/**
 * A lock file per key, so conditional writes are atomic between processes on one machine
 * (the embedded store's only concurrency story; S3 does this server-side).
 *
 * The lock holds its owner's identity (host, pid, process start time, boot id) and is put in
 * place with link(2), which fails if the name exists: the file appears complete or not at
 * all, so there is no torn lock to judge. A lock is broken only when its holder is provably
 * dead (same host, and the pid is gone or now belongs to another process). A holder that is
 * alive keeps its lock however long it is paused — a GC pause, SIGSTOP, a debugger — because
 * breaking it by age would let a paused writer rename a stale value over a newer one after
 * its precondition check. A lock held from another host cannot be judged and is never
 * broken: waiting fails retryably with a message naming the file to remove by hand.
 */
export interface LockOptions {
  /** Give up (STORE_UNAVAILABLE, retryable) after waiting this long. */
  timeoutMs: number;
}

/**
 * Polls for a held lock: the critical section it guards is a stat and a rename, so the waits
 * start at a few milliseconds and stay short (core/backoff.ts, the codebase's one formula).
 */
const LOCK_POLL: BackoffPolicy = { baseDelayMs: 2, maxDelayMs: 50 };

interface LockContent extends ProcessIdentity {
  nonce: string;
  t: number;
}

/** Takes the lock at `path`; resolves to a release function. */
export async function acquireFileLock(path: string, options: LockOptions): Promise<() => Promise<void>> {
  const content: LockContent = { ...currentProcess(), nonce: randomBytes(8).toString('hex'), t: Date.now() };
  const text = JSON.stringify(content);
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    if (await tryCreate(path, text, content.nonce)) return () => releaseIfOurs(path, text);
    const seen = await inspect(path);
    if (seen === undefined) continue; // released between our attempt and our read: try again now
    if (isAbandoned(seen)) {
      await breakLock(path, seen);
      continue;
    }
    if (Date.now() > deadline) {
      const holder = seen.parsed ? `pid ${seen.parsed.pid} on ${seen.parsed.host}` : 'an unknown holder';
      throw new CairnError('STORE_UNAVAILABLE', `timed out after ${options.timeoutMs}ms waiting for lock ${path}, held by ${holder} (remove the file only if that process is gone)`, {
        details: { lock: path, holder: seen.text },
      });
    }
    await sleepBackoff(attempt, LOCK_POLL);
  }
}

/** Writes the content beside the lock, then links it into place: complete or absent. */
async function tryCreate(path: string, text: string, nonce: string): Promise<boolean> {
  const staged = `${path}.${nonce}`;
  for (let i = 0; ; i++) {
    try {
      await writeFile(staged, text, { flag: 'wx' });
      break;
    } catch (err) {
      // The folder may have just been removed by a delete that pruned empty parents.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || i >= 5) throw err;
      await mkdir(dirname(path), { recursive: true });
    }
  }
  try {
    await link(staged, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlinkQuiet(staged);
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

function isAbandoned(seen: Seen): boolean {
  // Unreadable content can only come from a writer that predates link-based creation and
  // died between creating and filling the file; such a writer filled it within microseconds.
  if (!seen.parsed) return Date.now() - seen.mtimeMs > 1000;
  return liveness(seen.parsed) === 'dead';
}

async function breakLock(path: string, seen: Seen): Promise<void> {
  const breaker = `${path}.break`;
  if (!(await tryCreate(breaker, JSON.stringify(currentProcess()), randomBytes(8).toString('hex')))) {
    // Someone else is breaking it. A breaker that died mid-way leaves its file: drop it once
    // its holder is gone, then let the caller poll again.
    const b = await inspect(breaker);
    if (b && (b.parsed ? liveness(b.parsed) === 'dead' : Date.now() - b.mtimeMs > 5000)) await unlinkQuiet(breaker);
    else await sleepBackoff(1, LOCK_POLL);
    return;
  }
  try {
    const now = await inspect(path);
    // Only the exact lock we judged abandoned may go; a new holder writes a different nonce.
    if (now && now.text === seen.text) await unlinkQuiet(path);
  } finally {
    await unlinkQuiet(breaker);
  }
}

async function releaseIfOurs(path: string, text: string): Promise<void> {
  const now = await inspect(path);
  // Never true for a live holder today; kept so a release can never drop another's lock.
  if (now && now.text === text) await unlinkQuiet(path);
}

async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
