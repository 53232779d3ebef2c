import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeleteObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { rawS3Client, s3TestConfig, uniqueS3Prefix } from './s3.js';

/**
 * A second "region": another MinIO server, started by the same test/services/minio.sh on
 * its own port (its own data folder), so a test can stop it and start it again while the
 * global one keeps running. Start and stop are idempotent; data survives a stop.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = resolve(ROOT, 'test/services/minio.sh');
export const REGION_B_PORT = 9910;

function minio(command: 'start' | 'stop', port: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('bash', [SCRIPT, command], { cwd: ROOT, env: { ...process.env, MINIO_PORT: String(port) }, timeout: 10 * 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`minio.sh ${command} on port ${port} failed: ${err.message}\n${stderr}`));
      else resolvePromise(stdout);
    });
  });
}

export interface Region {
  name: string;
  endpoint: string;
  client: S3Client;
}

export async function startRegionB(): Promise<string> {
  const out = await minio('start', REGION_B_PORT);
  const endpoint = /^export S3_ENDPOINT=(.*)$/m.exec(out)?.[1];
  if (!endpoint) throw new Error(`minio.sh start printed no S3_ENDPOINT: ${out}`);
  return endpoint;
}

export async function stopRegionB(): Promise<void> {
  await minio('stop', REGION_B_PORT);
}

/** Two regions' store entries for a Cairn config, under one fresh prefix in each. */
export function twoRegionStores(endpointB: string, label: string, tuning: Record<string, unknown> = {}) {
  const s3 = s3TestConfig();
  const prefix = uniqueS3Prefix(label);
  const entry = (endpoint: string) => ({ url: `s3://${s3.bucket}/${prefix}`, endpoint, region: s3.region, forcePathStyle: true, ...tuning });
  return { stores: { eu: entry(s3.endpoint), us: entry(endpointB) }, prefix, bucket: s3.bucket };
}

/** A raw SDK client for one region: what the tests check objects with, outside Cairn. */
export const rawClient = (endpoint: string): S3Client => rawS3Client(endpoint);

/** The object's S3 storage class as HeadObject reports it (absent header: STANDARD). */
export async function storageClassOf(client: S3Client, bucket: string, key: string): Promise<string> {
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return head.StorageClass ?? 'STANDARD';
}

export async function deleteRaw(client: S3Client, bucket: string, key: string): Promise<void> {
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}
