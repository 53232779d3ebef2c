import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { BackoffPolicy } from '../../core/backoff.js';
import type { StoreConfig } from '../../core/config.js';
import { S3_DEFAULTS } from '../../core/defaults.js';
import { CairnError } from '../../core/errors.js';
import type { RetryHooks } from '../request-retry.js';
import type { StoreCapabilities } from '../types.js';

/**
 * S3 options without loading the AWS SDK: this file imports SDK *types* only, so building an
 * S3 store's options (and a lazy store around them) costs nothing until the first request.
 */

/**
 * Tuning for S3ObjectStore. s3OptionsFromConfig fills what StoreConfig holds (location, part
 * sizes, timeouts, attempts; their defaults live in STORE_DEFAULTS); the rest are expert knobs.
 */
export interface S3ObjectStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing '/'; '' for none. */
  prefix?: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  storageClass?: string;
  /** uploadFile sends one PutObject below this size, multipart at or above. Default 64 MiB. */
  multipartThresholdBytes?: number;
  /** Multipart upload part size (raised when a file would need more than 10,000 parts). Default 16 MiB. */
  partSizeBytes?: number;
  /** downloadFile fetches objects in parallel ranged GETs of this size. Default 16 MiB. */
  downloadPartSizeBytes?: number;
  /** copy uses one CopyObject up to this size, UploadPartCopy above. Default (and S3's limit) 5 GiB. */
  maxSingleCopyBytes?: number;
  /** UploadPartCopy part size. Default 512 MiB; at least 5 MiB (S3's minimum part). */
  copyPartSizeBytes?: number;
  /** Parallel part requests (uploads, downloads, copies) across this store. Default 32. */
  concurrency?: number;
  /** Memory that upload parts may hold at once. Default 512 MiB. */
  uploadBufferBytes?: number;
  /**
   * Bulk downloads (downloadFile) over the direct GET path (s3-direct-get.ts), falling back to
   * the SDK for any answer but a plain success. Default true; off when `client` is given.
   */
  directDownloads?: boolean;
  /** Memory the direct path's write segments may hold at once. Default 128 MiB. */
  downloadBufferBytes?: number;
  /** HTTP sockets per client. Default 64. */
  maxSockets?: number;
  /**
   * Attempts per request, the first included (StoreConfig.maxAttempts). This backend is the
   * one retry layer for its requests: each HTTP request (each part of a multipart transfer
   * on its own) is retried here, and the SDK never retries.
   */
  maxAttempts?: number;
  /** Time allowed to open a TCP (and TLS) connection (StoreConfig.connectTimeoutMs). */
  connectTimeoutMs?: number;
  /** A request whose socket stays silent this long fails (StoreConfig.requestTimeoutMs). */
  requestTimeoutMs?: number;
  /** The backoff between attempts. Default STORE_BACKOFF; tests shorten it. */
  backoff?: BackoffPolicy;
  /** Reports on retries and attempts per request (createStore feeds the metrics from here). */
  hooks?: RetryHooks;
  /** Explicit credentials; default is the SDK's standard chain (environment, profile, ...). */
  credentials?: S3ClientConfig['credentials'];
  /** Use this client instead of building one (it is not destroyed by close()). */
  client?: S3Client;
}

export function s3OptionsFromConfig(config: StoreConfig): S3ObjectStoreOptions {
  if (!config.bucket) throw new CairnError('INVALID_CONFIG', `store ${config.url}: no bucket`);
  return {
    bucket: config.bucket,
    prefix: config.prefix ?? '',
    multipartThresholdBytes: config.multipartThresholdBytes,
    partSizeBytes: config.partSizeBytes,
    connectTimeoutMs: config.connectTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    maxAttempts: config.maxAttempts,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.region ? { region: config.region } : {}),
    ...(config.forcePathStyle !== undefined ? { forcePathStyle: config.forcePathStyle } : {}),
    ...(config.storageClass ? { storageClass: config.storageClass } : {}),
  };
}

/** One definition for the eager backend and the lazy wrapper, which must agree before loading. */
export function s3Capabilities(options: Pick<S3ObjectStoreOptions, 'maxSingleCopyBytes'>): StoreCapabilities {
  return { name: 's3', serverSideCopy: true, conditionalWrite: true, rangedRead: true, maxSingleCopyBytes: options.maxSingleCopyBytes ?? S3_DEFAULTS.maxSingleCopyBytes, copyVerifies: 'etag', storageClasses: true, tagging: true };
}

export function s3Url(options: Pick<S3ObjectStoreOptions, 'bucket' | 'prefix'>): string {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  return `s3://${options.bucket}${prefix ? `/${prefix}` : ''}`;
}
