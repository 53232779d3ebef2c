import type { Registry } from 'prom-client';
import type { StoreConfig } from '../core/config.js';
import { CairnError } from '../core/errors.js';
import { FsObjectStore, type FsObjectStoreOptions } from './fs.js';
import { withMetrics, type MeteredObjectStore } from './metrics.js';
import { DEFAULT_RETRY, withRetry, type RetryOptions } from './retry.js';
import { LazyObjectStore } from './lazy.js';
import { s3Capabilities, s3OptionsFromConfig, s3Url, type S3ObjectStoreOptions } from './s3-options.js';
import type { ObjectStore } from './types.js';

export type { ObjectInfo, ObjectStore, PutOptions, StoreCapabilities, TransferProgress } from './types.js';
export { FsObjectStore, type FsObjectStoreOptions } from './fs.js';
// S3ObjectStore itself is imported from './s3.js' directly: re-exporting it here would load the AWS SDK eagerly.
export { s3OptionsFromConfig, type S3ObjectStoreOptions } from './s3-options.js';
export { LazyObjectStore } from './lazy.js';
export { withRetry, DEFAULT_RETRY, type RetryOptions, type RetryInfo } from './retry.js';
export { withMetrics, type MeteredObjectStore, type StoreMetricsSnapshot } from './metrics.js';
export { validateKey } from './keys.js';

export interface CreateStoreOptions {
  /** prom-client registry for `cairn_store_*` metrics; without one only snapshot() counts. */
  registry?: Registry;
  /** Retry policy overrides; `false` for none (e.g. a CLI probe that should fail fast). */
  retry?: Partial<RetryOptions> | false;
  /** Extra backend options (tuning, explicit credentials, a client of your own). */
  s3?: Partial<S3ObjectStoreOptions>;
  fs?: Partial<FsObjectStoreOptions>;
}

/** The bare backend a validated StoreConfig describes (no retry, no metrics). */
export function createBackend(config: StoreConfig, options: CreateStoreOptions = {}): ObjectStore {
  switch (config.kind) {
    case 'fs':
      if (!config.root) throw new CairnError('INVALID_CONFIG', `store ${config.url}: no root folder`);
      return new FsObjectStore({ root: config.root, ...options.fs });
    case 's3': {
      const s3 = { ...s3OptionsFromConfig(config), ...options.s3 };
      return new LazyObjectStore(s3Capabilities(s3), s3Url(s3), async () => new (await import('./s3.js')).S3ObjectStore(s3));
    }
    default:
      throw new CairnError('INVALID_CONFIG', `unknown store kind ${JSON.stringify((config as { kind: unknown }).kind)}`);
  }
}

/**
 * The store the rest of Cairn uses: backend, then retry, then metrics on the outside, so
 * metrics see one operation per call and its final outcome, plus a count of retries.
 */
export function createStore(config: StoreConfig, options: CreateStoreOptions = {}): MeteredObjectStore {
  const backend = createBackend(config, options);
  if (options.retry === false) return withMetrics(backend, options.registry);
  let metered: MeteredObjectStore | undefined;
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const userOnRetry = retry.onRetry;
  const retried = withRetry(backend, {
    ...retry,
    onRetry: (info) => {
      metered?.recordRetry(info.op);
      userOnRetry?.(info);
    },
  });
  metered = withMetrics(retried, options.registry);
  return metered;
}
