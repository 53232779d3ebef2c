import { randomBytes } from 'node:crypto';

/**
 * The store backends every end-to-end suite runs against: the filesystem default and real
 * MinIO. MinIO's coordinates come from the vitest global setup; when they are missing the
 * S3 variant fails loudly instead of being skipped.
 */
export interface BackendCase {
  name: 'fs' | 's3';
  /** The `store` section of a config file, with a prefix unique to this call. */
  storeConfig(label: string): Record<string, unknown>;
}

export function s3Env(): { endpoint: string; bucket: string } {
  const endpoint = process.env.S3_ENDPOINT;
  const bucket = process.env.S3_BUCKET;
  if (!endpoint || !bucket || !process.env.AWS_ACCESS_KEY_ID) {
    throw new Error(`MinIO not available: S3_ENDPOINT/S3_BUCKET/AWS_ACCESS_KEY_ID not set by the global setup (${process.env.CAIRN_MINIO_ERROR ?? 'no reason recorded'})`);
  }
  return { endpoint, bucket };
}

export const BACKENDS: BackendCase[] = [
  { name: 'fs', storeConfig: () => ({ url: 'file://./store' }) },
  {
    name: 's3',
    storeConfig: (label) => {
      const { endpoint, bucket } = s3Env();
      return { url: `s3://${bucket}/${label}-${randomBytes(4).toString('hex')}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true };
    },
  },
];
