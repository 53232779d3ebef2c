import { STORE_DEFAULTS } from '../core/config.js';
import { isCairnError } from '../core/errors.js';
import { attemptProgress, resolveOwnWrite, RetriedRequest, retryRequest, STORE_BACKOFF, type RetryHooks, type RetryPolicy } from './request-retry.js';
import type { CopyOptions, ObjectInfo, ObjectStore, PutOptions, StoreCapabilities, TransferProgress, DownloadOptions, DownloadResult, UploadOptions } from './types.js';

export type { AttemptsInfo, RetryHooks, RetryInfo, RetryPolicy } from './request-retry.js';

/** A retry policy plus the hooks that report on it (the `retry` option of createStore). */
export interface RetryOptions extends RetryPolicy, RetryHooks {}

/** Attempts from STORE_DEFAULTS; the backoff is the store's. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: STORE_DEFAULTS.maxAttempts, ...STORE_BACKOFF };

/**
 * The retry owner for a backend that does not retry its own requests: the filesystem store
 * (whose operations are each one local "request": EMFILE, EBUSY, a lock wait that timed out)
 * and fault injectors in tests. Not for the S3 backend, which retries each HTTP request
 * itself (createStore knows which is which); its exhausted errors are final, so a wrapper
 * stacked over it by mistake would not retry them again.
 *
 * Each operation is retried as a whole with retryRequest (same formula, same final error:
 * `retryable: false`, details.attempts). `list` restarts the listing and skips what it has
 * already yielded (listings are in key order), so a retry never repeats or loses a key.
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
    let attempts = 0;
    try {
      return await this.run('put', key, undefined, (n) => ((attempts = n), this.inner.put(key, body, options)));
    } catch (err) {
      // An earlier attempt may have landed; see resolveOwnWrite.
      if (conditional && attempts > 1 && isCairnError(err, 'CONDITION_FAILED')) {
        const mine = await resolveOwnWrite(() => this.inner.get(key), body);
        if (mine) return mine;
      }
      throw err;
    }
  }

  uploadFile(key: string, path: string, options?: UploadOptions): Promise<{ etag: string; size: number }> {
    const progress = attemptProgress(options);
    return this.run('uploadFile', key, options?.signal, () => this.inner.uploadFile(key, path, progress()));
  }

  downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    const progress = attemptProgress(options);
    return this.run('downloadFile', key, options?.signal, () => this.inner.downloadFile(key, path, progress()));
  }

  copy(from: string, to: string, options?: CopyOptions): Promise<{ etag: string }> {
    return this.run('copy', from, undefined, () => this.inner.copy(from, to, options));
  }

  delete(keys: string[]): Promise<void> {
    return this.run('delete', keys[0], undefined, () => this.inner.delete(keys));
  }

  /** Replacing a whole tag set is idempotent, so it is retried like any other request. */
  tag(key: string, tags: Record<string, string>): Promise<void> {
    return this.run('tag', key, undefined, () => this.inner.tag(key, tags));
  }

  /** A retry restarts the listing and skips what was already yielded (lists are in key order). */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const request = new RetriedRequest(this.options, this.options, { op: 'list', key: prefix });
    let last: string | undefined;
    for (;;) {
      try {
        for await (const info of this.inner.list(prefix)) {
          if (last !== undefined && info.key <= last) continue;
          last = info.key;
          yield info;
        }
        request.succeeded();
        return;
      } catch (err) {
        await request.failed(err);
      }
    }
  }

  listFolders(prefix: string): Promise<string[]> {
    return this.run('listFolders', prefix, undefined, () => this.inner.listFolders(prefix));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private run<T>(op: string, key: string | undefined, signal: AbortSignal | undefined, fn: (attempt: number) => Promise<T>): Promise<T> {
    return retryRequest(this.options, this.options, { op, key, signal }, fn);
  }
}
