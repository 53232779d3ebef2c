import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError } from '../core/errors.js';
import type { CopyOptions, ObjectInfo, ObjectStore, PutOptions, StoreCapabilities, TransferProgress, DownloadOptions, DownloadResult } from './types.js';

export interface RetryOptions {
  /** Total attempts including the first (1 = no retry). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  op: string;
  key: string | undefined;
  /** The attempt that failed (1-based). */
  attempt: number;
  delayMs: number;
  error: CairnError;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 4, baseDelayMs: 200, maxDelayMs: 5_000 };

/**
 * Retries operations whose error says `retryable === true` (STORE_UNAVAILABLE and the
 * like), with exponential backoff and full jitter so that many workers hitting one
 * throttled bucket spread out instead of retrying in lockstep. Everything else —
 * NOT_FOUND, CONDITION_FAILED, STORE_FAILED — surfaces at once.
 */
export function withRetry(store: ObjectStore, options: Partial<RetryOptions> = {}): ObjectStore {
  return new RetryingStore(store, { ...DEFAULT_RETRY, ...options });
}

class RetryingStore implements ObjectStore {
  constructor(
    private readonly inner: ObjectStore,
    private readonly options: RetryOptions,
  ) {}

  get capabilities(): StoreCapabilities {
    return this.inner.capabilities;
  }

  get url(): string {
    return this.inner.url;
  }

  get(key: string, options?: { range?: { start: number; end: number } }): Promise<{ body: Buffer; etag: string }> {
    return this.run('get', key, undefined, () => this.inner.get(key, options));
  }

  head(key: string): Promise<ObjectInfo> {
    return this.run('head', key, undefined, () => this.inner.head(key));
  }

  async put(key: string, body: Buffer | string, options?: PutOptions): Promise<{ etag: string }> {
    const conditional = options?.ifMatch !== undefined || options?.ifNoneMatch !== undefined;
    let ambiguous = false;
    try {
      return await this.run('put', key, undefined, () => this.inner.put(key, body, options), () => (ambiguous = true));
    } catch (err) {
      // A conditional put that timed out may have landed; its retry then loses to our own
      // write. If the object now holds exactly our bytes, the write did happen.
      if (conditional && ambiguous && err instanceof CairnError && err.code === 'CONDITION_FAILED') {
        const mine = await this.resolveOwnWrite(key, body);
        if (mine) return mine;
      }
      throw err;
    }
  }

  uploadFile(key: string, path: string, options?: TransferProgress): Promise<{ etag: string; size: number }> {
    const progress = dedupeProgress(options);
    return this.run('uploadFile', key, options?.signal, () => this.inner.uploadFile(key, path, progress.forAttempt()));
  }

  downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    const progress = dedupeProgress(options);
    return this.run('downloadFile', key, options?.signal, () => this.inner.downloadFile(key, path, progress.forAttempt()));
  }

  copy(from: string, to: string, options?: CopyOptions): Promise<{ etag: string }> {
    return this.run('copy', from, undefined, () => this.inner.copy(from, to, options));
  }

  delete(keys: string[]): Promise<void> {
    return this.run('delete', keys[0], undefined, () => this.inner.delete(keys));
  }

  /** A retry restarts the listing and skips what was already yielded (lists are in key order). */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let last: string | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const info of this.inner.list(prefix)) {
          if (last !== undefined && info.key <= last) continue;
          last = info.key;
          yield info;
        }
        return;
      } catch (err) {
        if (!(err instanceof CairnError)) throw err;
        await this.backoff('list', prefix, undefined, attempt, err);
      }
    }
  }

  listFolders(prefix: string): Promise<string[]> {
    return this.run('listFolders', prefix, undefined, () => this.inner.listFolders(prefix));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async run<T>(op: string, key: string | undefined, signal: AbortSignal | undefined, fn: () => Promise<T>, onRetried?: () => void): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        // Anything but a CairnError is a bug, not an outage: let it through untouched.
        if (!(err instanceof CairnError)) throw err;
        await this.backoff(op, key, signal, attempt, err);
        onRetried?.();
      }
    }
  }

  /** Throws `error` when it is final; otherwise sleeps the backoff for `attempt`. */
  private async backoff(op: string, key: string | undefined, signal: AbortSignal | undefined, attempt: number, error: CairnError): Promise<void> {
    if (!error.retryable || attempt >= this.options.attempts || signal?.aborted) throw error;
    const cap = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** (attempt - 1));
    const delayMs = Math.random() * cap;
    this.options.onRetry?.({ op, key, attempt, delayMs, error });
    try {
      await sleep(delayMs, undefined, signal ? { signal } : {});
    } catch {
      throw new CairnError('ABORTED', `${op} ${key ?? ''}: aborted while waiting to retry`, { cause: error });
    }
  }

  private async resolveOwnWrite(key: string, body: Buffer | string): Promise<{ etag: string } | undefined> {
    try {
      const current = await this.inner.get(key);
      const wanted = typeof body === 'string' ? Buffer.from(body) : body;
      return current.body.equals(wanted) ? { etag: current.etag } : undefined;
    } catch {
      return undefined;
    }
  }
}

/**
 * onBytes promises deltas of bytes moved; a retried transfer must not count the bytes of
 * the failed attempt twice, so each attempt reports only what goes beyond the best so far.
 */
function dedupeProgress(options: TransferProgress | undefined): { forAttempt: () => TransferProgress | undefined } {
  const onBytes = options?.onBytes;
  if (!onBytes) return { forAttempt: () => options };
  let reported = 0;
  return {
    forAttempt: () => {
      let moved = 0;
      return {
        ...options,
        onBytes: (delta: number) => {
          moved += delta;
          if (moved > reported) {
            onBytes(moved - reported);
            reported = moved;
          }
        },
      };
    },
  };
}
