import { CairnError, isDiskFull } from '../../core/errors.js';

/**
 * S3 (and S3-compatible) failures into Cairn's closed list of codes. Retryability is the
 * point: a 503 or a reset connection is worth another attempt (STORE_UNAVAILABLE), a 403
 * or a missing bucket is not (STORE_FAILED) — retrying those only delays the real error.
 */
const THROTTLING = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'XMinioServerNotInitialized',
]);

const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'UND_ERR_SOCKET',
]);

interface SdkLikeError {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  $response?: { statusCode?: number };
}

export interface S3ErrorContext {
  op: string;
  key?: string;
  /** The request carried If-Match / If-None-Match (a 404 then means the condition failed). */
  conditional?: boolean;
  signal?: AbortSignal;
}

export function mapS3Error(err: unknown, ctx: S3ErrorContext): CairnError {
  if (err instanceof CairnError) return err;
  const e = (err ?? {}) as SdkLikeError;
  const name = e.name ?? '';
  const code = e.Code ?? e.code ?? '';
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  const where = ctx.key !== undefined ? `${ctx.op} ${ctx.key}` : ctx.op;
  const message = `${where}: ${describe(e, status)}`;
  const details = { op: ctx.op, ...(ctx.key !== undefined ? { key: ctx.key } : {}), ...(status ? { status } : {}), ...(name ? { s3Code: code || name } : {}) };
  const make = (c: ConstructorParameters<typeof CairnError>[0]) => new CairnError(c, message, { cause: err, details });

  if (ctx.signal?.aborted) return new CairnError('ABORTED', `${where}: aborted`, { cause: err, details });
  // A download writing into a full local disk: not the store's fault, and no retry helps.
  if (status === undefined && isDiskFull(err)) return make('DISK_FULL');
  if (status === 412 || name === 'PreconditionFailed' || code === 'PreconditionFailed') return make('CONDITION_FAILED');
  if (name === 'ConditionalRequestConflict' || code === 'ConditionalRequestConflict') return make('CONDITION_FAILED');
  // The body's bytes are not the ones hashed or digested for it (a file changed under us).
  if (name === 'XAmzContentSHA256Mismatch' || name === 'BadDigest' || code === 'XAmzContentSHA256Mismatch' || code === 'BadDigest') return make('CORRUPT');
  if (name === 'NoSuchBucket' || code === 'NoSuchBucket') return make('STORE_FAILED');
  if (status === 404 || name === 'NoSuchKey' || name === 'NotFound' || code === 'NoSuchKey') {
    // AWS answers If-Match on a missing key with 404; for the caller that is a lost condition.
    return make(ctx.conditional ? 'CONDITION_FAILED' : 'NOT_FOUND');
  }
  if (status === 409 && ctx.conditional) return make('CONDITION_FAILED');
  if (status === 416 || name === 'InvalidRange') return make('BAD_INPUT');
  if ((status !== undefined && status >= 500) || status === 429) return make('STORE_UNAVAILABLE');
  if (THROTTLING.has(name) || THROTTLING.has(code)) return make('STORE_UNAVAILABLE');
  if (NETWORK.has(code) || NETWORK.has(name) || name === 'TimeoutError' || name === 'RequestTimeout') return make('STORE_UNAVAILABLE');
  // No HTTP status at all: the request never got an answer (socket hang up, DNS, TLS).
  if (status === undefined && (e.$retryable !== undefined || /socket|network|ECONN|EPIPE|hang up|timed? ?out/i.test(e.message ?? ''))) {
    return make('STORE_UNAVAILABLE');
  }
  if (name === 'AbortError') return make('ABORTED');
  return make('STORE_FAILED');
}

function describe(e: SdkLikeError, status: number | undefined): string {
  const parts = [e.name && e.name !== 'Error' ? e.name : e.code, status ? `HTTP ${status}` : undefined, e.message]
    .filter((p): p is string => typeof p === 'string' && p.length > 0);
  return [...new Set(parts)].join(': ') || 'unknown error';
}
