import { randomBytes } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { basename } from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';
import type { StoreConfig } from '../../src/core/config.js';
import { STORE_DEFAULTS } from '../../src/core/defaults.js';

/**
 * What S3 integration tests need to reach the MinIO started by test/setup/global.ts.
 * Throws (never skips) when MinIO is not available, so a missing service shows up as a
 * failure with its reason.
 */
export interface S3TestEnv {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export function s3TestConfig(): S3TestEnv {
  const status = inject('minio');
  const env = status?.ok ? status.env : {};
  const pick = (name: string) => env[name] ?? process.env[name];
  const endpoint = pick('S3_ENDPOINT');
  const bucket = pick('S3_BUCKET');
  const accessKeyId = pick('AWS_ACCESS_KEY_ID');
  const secretAccessKey = pick('AWS_SECRET_ACCESS_KEY');
  if (!endpoint || !bucket || !accessKeyId || !secretAccessKey) {
    throw new Error(`MinIO not available: ${status?.reason ?? 'S3_ENDPOINT / S3_BUCKET / AWS credentials not set by the global setup'}`);
  }
  const region = pick('AWS_REGION') ?? 'us-east-1';
  // The store takes credentials from the SDK's default chain, i.e. from the environment.
  process.env.AWS_ACCESS_KEY_ID = accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = secretAccessKey;
  process.env.AWS_REGION = region;
  return { endpoint, bucket, region, accessKeyId, secretAccessKey };
}

/**
 * A key prefix no other test file (or earlier run) uses: `t/<name>-<time>-<random>`.
 * Pass `import.meta.url` or a short name.
 */
export function uniqueS3Prefix(name: string): string {
  const short = basename(name).replace(/\.test\.[cm]?[jt]s$/, '').replace(/[^a-z0-9-]+/gi, '-').toLowerCase().slice(0, 40) || 'test';
  return `t/${short}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** A normalised StoreConfig for the test bucket under a fresh prefix. */
export function s3StoreConfig(prefix: string = uniqueS3Prefix('test'), overrides: Partial<StoreConfig> = {}): StoreConfig {
  const s3 = s3TestConfig();
  return {
    kind: 's3',
    url: `s3://${s3.bucket}/${prefix}`,
    bucket: s3.bucket,
    prefix,
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    ...STORE_DEFAULTS,
    ...overrides,
  };
}

/** A raw SDK client for the test MinIO (or another server with the same credentials): what tests check buckets with, outside Cairn. */
export function rawS3Client(endpoint?: string): S3Client {
  const s3 = s3TestConfig();
  return new S3Client({ endpoint: endpoint ?? s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
}

/** For one test file: a raw client and the test bucket (`.client`, `.bucket` once the file's tests run), closed after them. */
export function rawBucketForFile(): { readonly client: S3Client; readonly bucket: string } {
  const handle = {} as { client: S3Client; bucket: string };
  beforeAll(() => {
    handle.bucket = s3TestConfig().bucket;
    handle.client = rawS3Client();
  });
  afterAll(() => handle.client?.destroy());
  return handle;
}
