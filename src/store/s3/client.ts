import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { S3_DEFAULTS, STORE_DEFAULTS } from '../../core/defaults.js';
import type { S3ObjectStoreOptions } from './options.js';

/** The region requests are signed for: the option, else the SDK's usual environment variables. */
export function regionOf(o: Pick<S3ObjectStoreOptions, 'region'>): string {
  return o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? S3_DEFAULTS.region;
}

/** Path style is what MinIO and most S3-compatible servers expect behind a custom endpoint. */
export function usesPathStyle(o: Pick<S3ObjectStoreOptions, 'forcePathStyle' | 'endpoint'>): boolean {
  return o.forcePathStyle ?? Boolean(o.endpoint);
}

/** Sockets per endpoint, for the SDK's agents and the direct download path alike. */
export function maxSocketsOf(o: Pick<S3ObjectStoreOptions, 'maxSockets'>): number {
  return o.maxSockets ?? S3_DEFAULTS.maxSockets;
}

export function buildClient(o: S3ObjectStoreOptions): S3Client {
  const agent = { keepAlive: true, maxSockets: maxSocketsOf(o) };
  const requestTimeoutMs = o.requestTimeoutMs ?? STORE_DEFAULTS.requestTimeoutMs;
  return new S3Client({
    region: regionOf(o),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    forcePathStyle: usesPathStyle(o),
    ...(o.credentials ? { credentials: o.credentials } : {}),
    // The SDK never retries: S3ObjectStore retries each request itself (one layer, one
    // backoff formula, one attempt count). SDK retries underneath would multiply with it.
    maxAttempts: 1,
    // Integrity is checked end to end with sha256 by the snapshot layer; per-request CRCs
    // cost CPU on the restore path and trip up some S3-compatible servers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agent),
      httpsAgent: new HttpsAgent(agent),
      connectionTimeout: o.connectTimeoutMs ?? STORE_DEFAULTS.connectTimeoutMs,
      // requestTimeoutMs bounds the wait for an answer twice over, so a server that accepts
      // the connection and then says nothing fails the attempt (TimeoutError, mapped to
      // STORE_UNAVAILABLE) instead of hanging it:
      // - no response headers that long after the request started (Smithy's requestTimeout,
      //   which only throws with throwOnRequestTimeout). Uploads of file bodies opt out per
      //   request (S3ObjectStore's UPLOAD_BODY): that clock would count the upload itself;
      // - the socket silent that long, whether sending, waiting or receiving a body (Smithy's
      //   socketTimeout; Smithy arms it ~3 s after the request starts when it is >= 6 s).
      requestTimeout: requestTimeoutMs,
      throwOnRequestTimeout: true,
      socketTimeout: requestTimeoutMs,
    }),
  });
}

export { s3OptionsFromConfig, type S3ObjectStoreOptions } from './options.js';
