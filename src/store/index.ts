import type { Registry } from 'prom-client';
import type { StoreConfig } from '../core/config.js';
import { CairnError } from '../core/errors.js';
import { FsObjectStore, type FsObjectStoreOptions } from './fs/store.js';
import { withMetrics, type MeteredObjectStore } from './metrics.js';
import { STORE_BACKOFF, type RetryHooks } from './request-retry.js';
import { withRetry, type RetryOptions } from './retry.js';
import { LazyObjectStore } from './lazy.js';
import { s3Capabilities, s3OptionsFromConfig, s3Url, type S3ObjectStoreOptions } from './s3/options.js';
import type { ObjectStore } from './types.js';

/**
 * `cairn-state/store`: the object store abstraction, its backends and wrappers. A custom
 * backend extends AbstractObjectStore (validation done, five methods to write); a wrapper
 * extends WrappedObjectStore and overrides `around` or the methods it changes. The shipped
 * conformance suite (`cairn-state/testing`) checks either.
 */
export type {
  ByteRange,
  ClassedWrite,
  CopyOptions,
  DownloadOptions,
  DownloadResult,
  GetOptions,
  GetResult,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  PutResult,
  StoreCapabilities,
  TransferProgress,
  UploadOptions,
  UploadResult,
} from './types.js';
export { AbstractObjectStore, clampRange, sliceRange } from './base.js';
export { ForwardingObjectStore, WrappedObjectStore, type StoreCall, type StoreOp } from './forwarding.js';
export { FsObjectStore, type FsObjectStoreOptions } from './fs/store.js';
// S3ObjectStore itself is imported from './s3/store.js' directly: re-exporting it here would load the AWS SDK eagerly.
export { s3OptionsFromConfig, type S3ObjectStoreOptions } from './s3/options.js';
export { LazyObjectStore } from './lazy.js';
export { withRetry, DEFAULT_RETRY, type RetryOptions, type RetryInfo, type AttemptsInfo, type RetryHooks } from './retry.js';
export { STORE_BACKOFF } from './request-retry.js';
export { withMetrics, type MeteredObjectStore, type StoreMetricsSnapshot } from './metrics.js';
export { validateKey } from './keys.js';

export interface CreateStoreOptions {
  /** prom-client registry for `cairn_store_*` metrics; without one only snapshot() counts. */
  registry?: Registry;
  /**
   * Overrides of the retry policy (attempts — default store.maxAttempts — backoff, hooks),
   * applied by the one layer that retries each request; `false` for a single attempt (e.g. a
   * CLI probe that should fail fast).
   */
  retry?: Partial<RetryOptions> | false;
  /** Extra backend options (tuning, explicit credentials, a client of your own). */
  s3?: Partial<S3ObjectStoreOptions>;
  fs?: Partial<FsObjectStoreOptions>;
}

/**
 * The backend a validated StoreConfig describes, without metrics. The S3 backend retries each
 * of its HTTP requests itself (with `options.retry`), so it is complete here; the
 * filesystem backend is bare — createStore puts withRetry over it.
 */
export function createBackend(config: StoreConfig, options: CreateStoreOptions = {}): ObjectStore {
  switch (config.kind) {
    case 'fs':
      if (!config.root) throw new CairnError('INVALID_CONFIG', `store ${config.url}: no root folder`);
      return new FsObjectStore({ root: config.root, ...options.fs });
    case 's3': {
      const retry = retryPolicy(config, options.retry);
      const s3: S3ObjectStoreOptions = {
        ...s3OptionsFromConfig(config),
        maxAttempts: retry.attempts,
        backoff: { baseDelayMs: retry.baseDelayMs, maxDelayMs: retry.maxDelayMs },
        hooks: { ...(retry.onRetry ? { onRetry: retry.onRetry } : {}), ...(retry.onAttempts ? { onAttempts: retry.onAttempts } : {}) },
        ...options.s3,
      };
      return new LazyObjectStore(s3Capabilities(s3), s3Url(s3), async () => new (await import('./s3/store.js')).S3ObjectStore(s3));
    }
    default:
      throw new CairnError('INVALID_CONFIG', `unknown store kind ${JSON.stringify((config as { kind: unknown }).kind)}`);
  }
}

/**
 * The store the rest of Cairn uses: the backend with exactly one retry layer (S3: inside the
 * backend, per HTTP request; filesystem: withRetry, per operation), then metrics on the
 * outside, so metrics see one operation per call and its final outcome, while the retry
 * layer reports each retry and the attempts of each request to them.
 */
export function createStore(config: StoreConfig, options: CreateStoreOptions = {}): MeteredObjectStore {
  let metered: MeteredObjectStore | undefined;
  const user = options.retry === false ? undefined : options.retry;
  const hooks: RetryHooks = {
    onRetry: (info) => {
      metered?.recordRetry(info.op);
      user?.onRetry?.(info);
    },
    onAttempts: (info) => {
      metered?.recordAttempts(info.op, info.attempts);
      user?.onAttempts?.(info);
    },
  };
  const retry: RetryOptions = { ...retryPolicy(config, options.retry), ...hooks };
  const backend = config.kind === 's3' ? createBackend(config, { ...options, retry }) : withRetry(createBackend(config, options), retry);
  metered = withMetrics(backend, options.registry);
  return metered;
}

function retryPolicy(config: StoreConfig, retry: Partial<RetryOptions> | false | undefined): RetryOptions {
  if (retry === false) return { attempts: 1, ...STORE_BACKOFF };
  return { attempts: config.maxAttempts, ...STORE_BACKOFF, ...retry };
}
