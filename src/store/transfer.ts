import type { Hash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { stat, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { CairnError } from '../core/errors.js';

/** A byte range, start inclusive, end exclusive. */
export interface Range {
  start: number;
  end: number;
}

export function partRanges(size: number, partSize: number): Range[] {
  const ranges: Range[] = [];
  for (let start = 0; start < size; start += partSize) ranges.push({ start, end: Math.min(size, start + partSize) });
  return ranges;
}

/**
 * Bounds the memory that buffered upload parts hold at once, whatever mix of file sizes
 * and concurrency the caller throws at the store. FIFO, so a large part is not starved by
 * a stream of small ones; a request larger than the whole budget runs alone.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: Array<{ n: number; wake: () => void }> = [];

  constructor(private readonly limit: number) {}

  async with<T>(n: number, fn: () => Promise<T>): Promise<T> {
    await this.acquire(n);
    try {
      return await fn();
    } finally {
      this.release(n);
    }
  }

  private fits(n: number): boolean {
    return this.used === 0 || this.used + n <= this.limit;
  }

  private async acquire(n: number): Promise<void> {
    if (this.waiters.length === 0 && this.fits(n)) {
      this.used += n;
      return;
    }
    await new Promise<void>((wake) => this.waiters.push({ n, wake }));
  }

  private release(n: number): void {
    this.used -= n;
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.n)) {
      const w = this.waiters.shift()!;
      this.used += w.n;
      w.wake();
    }
  }
}

/**
 * Starts `fn` for every item; on the first failure aborts the rest (through the signal it
 * hands them), waits for all to settle — parts may be writing into a shared file handle
 * that the caller is about to close — and rethrows that first failure.
 */
export async function runAllOrAbort<T, R>(
  outer: AbortSignal | undefined,
  items: readonly T[],
  fn: (item: T, signal: AbortSignal, index: number) => Promise<R>,
): Promise<R[]> {
  const controller = new AbortController();
  const signal = outer ? AbortSignal.any([outer, controller.signal]) : controller.signal;
  // Every in-flight part request listens on this one signal; that is expected, not a leak.
  setMaxListeners(0, signal);
  let firstError: unknown;
  let failed = false;
  const settled = await Promise.allSettled(
    items.map((item, i) =>
      fn(item, signal, i).catch((err: unknown) => {
        if (!failed) {
          failed = true;
          firstError = err;
          controller.abort(err);
        }
        throw err;
      }),
    ),
  );
  if (failed) throw firstError;
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}

export async function localSize(path: string): Promise<number> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new CairnError('BAD_INPUT', `${path} is not a regular file`);
    return st.size;
  } catch (err) {
    if (err instanceof CairnError) throw err;
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'STORE_FAILED';
    throw new CairnError(code, `local file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export async function readExactly(fh: FileHandle, range: Range, path: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(range.end - range.start);
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, range.start + done);
    if (bytesRead === 0) throw new CairnError('STORE_FAILED', `${path} shrank while being uploaded`);
    done += bytesRead;
  }
  return buf;
}

/** Streams a response body to `offset` in the file, hashing it when asked; returns the bytes written. */
export async function writeAt(fh: FileHandle, body: Readable | undefined, offset: number, report: (n: number) => void, hash?: Hash): Promise<number> {
  if (!body) return 0;
  let pos = offset;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    hash?.update(b);
    let off = 0;
    while (off < b.length) {
      const { bytesWritten } = await fh.write(b, off, b.length - off, pos);
      off += bytesWritten;
      pos += bytesWritten;
    }
    report(b.length);
  }
  return pos - offset;
}

/** Problems with a local file the caller named (not with the store). */
export function localError(err: unknown, path: string): CairnError {
  if (err instanceof CairnError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new CairnError('NOT_FOUND', `local file ${path} does not exist`, { cause: err, details: { path } });
  if (code === 'ENOSPC') return new CairnError('DISK_FULL', `local file ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
  return new CairnError('STORE_FAILED', `local file ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
}
