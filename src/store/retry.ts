import { STORE_DEFAULTS } from '../core/defaults.js';
import { isCairnError } from '../core/errors.js';
import { attemptProgress, resolveOwnWrite, RetriedRequest, retryRequest, STORE_BACKOFF, type RetryHooks, type RetryPolicy } from './request-retry.js';
import { signalOf, WrappedObjectStore, type StoreCall } from './forwarding.js';
import type { DownloadOptions, DownloadResult, ObjectInfo, ObjectStore, PutOptions, PutResult, UploadOptions, UploadResult } from './types.js';

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

class RetryingStore extends WrappedObjectStore {
  constructor(
    inner: ObjectStore,
    private readonly options: RetryOptions,
  ) {
    super(inner);
  }

  /** Every call is retried as a whole; uploads, downloads, conditional puts and lists add to that below. */
  protected override around<T>(call: StoreCall, run: (attempt: number) => Promise<T>): Promise<T> {
    return retryRequest(this.options, this.options, { op: call.op, key: call.from ?? call.key, signal: call.signal }, run);
  }

  override async put(key: string, body: Buffer | string, options?: PutOptions): Promise<PutResult> {
    const conditional = options?.ifMatch !== undefined || options?.ifNoneMatch !== undefined;
    let attempts = 0;
    try {
      return await this.around({ op: 'put', key }, (n) => ((attempts = n), this.inner.put(key, body, options)));
    } catch (err) {
      // An earlier attempt may have landed; see resolveOwnWrite.
      if (conditional && attempts > 1 && isCairnError(err, 'CONDITION_FAILED')) {
        const mine = await resolveOwnWrite(() => this.inner.get(key), body);
        if (mine) return mine;
      }
      throw err;
    }
  }

  /** Progress restarts with each attempt: what a failed attempt reported is taken back. */
  override uploadFile(key: string, path: string, options?: UploadOptions): Promise<UploadResult> {
    const progress = attemptProgress(options);
    return this.around({ op: 'uploadFile', key, ...signalOf(options) }, () => this.inner.uploadFile(key, path, progress()));
  }

  override downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    const progress = attemptProgress(options);
    return this.around({ op: 'downloadFile', key, ...signalOf(options) }, () => this.inner.downloadFile(key, path, progress()));
  }

  /** A retry restarts the listing and skips what was already yielded (lists are in key order). */
  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
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
}
