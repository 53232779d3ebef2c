import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { S3ObjectStoreOptions } from './s3-options.js';

export function buildClient(o: S3ObjectStoreOptions): S3Client {
  const agent = { keepAlive: true, maxSockets: o.maxSockets ?? 64 };
  return new S3Client({
    region: o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    // Path style is what MinIO and most S3-compatible servers expect behind a custom endpoint.
    forcePathStyle: o.forcePathStyle ?? Boolean(o.endpoint),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    maxAttempts: o.maxAttempts ?? 3,
    // Integrity is checked end to end with sha256 by the snapshot layer; per-request CRCs
    // cost CPU on the restore path and trip up some S3-compatible servers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agent),
      httpsAgent: new HttpsAgent(agent),
      connectionTimeout: o.connectionTimeoutMs ?? 10_000,
      socketTimeout: o.socketTimeoutMs ?? 120_000,
    }),
  });
}

export { s3OptionsFromConfig, type S3ObjectStoreOptions } from './s3-options.js';
