import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay, type BackoffPolicy } from '../core/backoff.js';
import { RETRY_DEFAULTS } from '../core/defaults.js';
import { CairnError, type ErrorCode } from '../core/errors.js';
import type { TransferProgress } from './types.js';

/**
 * The one retry loop for object-store requests. Exactly one layer runs it per request:
 *
 * - the S3 backend, around every HTTP request it sends (each PUT, GET, list page, and each
 *   part of a multipart transfer on its own), so a failed part costs that part only and the
 *   AWS SDK never retries (its maxAttempts is 1);
 * - RetryingStore (withRetry), around each operation of a backend that does not retry by
 *   itself (the filesystem store, test fault injectors).
 *
 * Stacking two of them multiplies attempts (SDK 3 × part 3 × wrapper 4 once made 65 requests
 * for a 2-part upload), so the layers never nest. Only store outages are retried:
 * STORE_UNAVAILABLE marked retryable. Everything else (NOT_FOUND, CONDITION_FAILED, a full
 * local disk...) surfaces at once, unchanged.
 */
export interface RetryPolicy extends BackoffPolicy {
  /** Attempts per request, the first included (1 = never retry). */
  attempts: number;
}

/** The backoff between store attempts. Not configurable: the attempt count is the knob. */
export const STORE_BACKOFF: BackoffPolicy = { baseDelayMs: RETRY_DEFAULTS.baseDelayMs, maxDelayMs: RETRY_DEFAULTS.maxDelayMs };

export interface RetryInfo {
  /** The ObjectStore operation the request belongs to ('get', 'uploadFile', ...). */
  op: string;
  key: string | undefined;
  /** The attempt that failed (1-based). */
  attempt: number;
  delayMs: number;
  error: CairnError;
}

export interface AttemptsInfo {
  op: string;
  key: string | undefined;
  /** Attempts this request took, the first included. */
  attempts: number;
  outcome: 'ok' | ErrorCode;
}

/** What the retry owner reports; createStore wires both into the metrics wrapper. */
export interface RetryHooks {
  /** Once per retry, before its backoff. */
  onRetry?: (info: RetryInfo) => void;
  /** Once per request, when it is settled (attempts per logical request). */
  onAttempts?: (info: AttemptsInfo) => void;
}

export interface RequestContext {
  op: string;
  key?: string | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Runs `attempt(n)` until it succeeds, fails for good, or `policy.attempts` are spent.
 * `toError` turns whatever an attempt threw into a CairnError (e.g. mapS3Error); a value it
 * leaves as something else is a bug and passes through untouched. When the last attempt
 * fails retryably the error is final: same code, `retryable: false`, details.attempts.
 */
export async function retryRequest<T>(
  policy: RetryPolicy,
  hooks: RetryHooks,
  ctx: RequestContext,
  attempt: (n: number) => Promise<T>,
  toError?: (err: unknown) => unknown,
): Promise<T> {
  const request = new RetriedRequest(policy, hooks, ctx, toError);
  for (;;) {
    try {
      const result = await attempt(request.attempt);
      request.succeeded();
      return result;
    } catch (err) {
      await request.failed(err);
    }
  }
}

/**
 * The state of one request across its attempts, for loops that cannot be a callback (a
 * listing that yields as it goes). `failed` either throws the final error or sleeps the
 * backoff and returns, after which the caller makes attempt number `attempt`.
 */
export class RetriedRequest {
  /** The attempt being made, 1-based. */
  attempt = 1;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly hooks: RetryHooks,
    private readonly ctx: RequestContext,
    private readonly toError: (err: unknown) => unknown = (err) => err,
  ) {}

  succeeded(): void {
    this.settle('ok');
  }

  async failed(err: unknown): Promise<void> {
    const { ctx, policy } = this;
    const mapped = this.toError(err);
    if (!(mapped instanceof CairnError)) {
      this.settle('INTERNAL');
      throw mapped;
    }
    const e = ctx.signal?.aborted && mapped.code !== 'ABORTED' ? aborted(ctx, mapped) : mapped;
    if (!isOutage(e)) {
      this.settle(e.code);
      throw e;
    }
    if (this.attempt >= policy.attempts) {
      this.settle(e.code);
      throw exhausted(e, this.attempt);
    }
    const delayMs = backoffDelay(this.attempt, policy);
    this.hooks.onRetry?.({ op: ctx.op, key: ctx.key, attempt: this.attempt, delayMs, error: e });
    try {
      await sleep(delayMs, undefined, ctx.signal ? { signal: ctx.signal } : {});
    } catch {
      this.settle('ABORTED');
      throw aborted(ctx, e);
    }
    this.attempt++;
  }

  private settle(outcome: AttemptsInfo['outcome']): void {
    this.hooks.onAttempts?.({ op: this.ctx.op, key: this.ctx.key, attempts: this.attempt, outcome });
  }
}

/**
 * Worth another attempt: the store was unreachable or answered with a temporary failure.
 * An exhausted error (retryable: false) is final even here, so a retry layer stacked by
 * mistake on another cannot multiply the attempts.
 */
function isOutage(e: CairnError): boolean {
  return e.code === 'STORE_UNAVAILABLE' && e.retryable;
}

/** The final error of a request that used up its attempts: nothing above should retry it. */
function exhausted(e: CairnError, attempts: number): CairnError {
  const message = attempts > 1 ? `${e.message} (gave up after ${attempts} attempts)` : e.message;
  return new CairnError(e.code, message, { cause: e.cause ?? e, retryable: false, details: { ...e.details, attempts } });
}

function aborted(ctx: RequestContext, cause: unknown): CairnError {
  return new CairnError('ABORTED', `${ctx.op}${ctx.key === undefined ? '' : ` ${ctx.key}`}: aborted`, { cause });
}

/**
 * onBytes promises deltas of bytes moved; a retried request must not count the bytes of a
 * failed attempt twice. Each attempt gets its own reporter that passes on only what goes
 * beyond the most any attempt has reported so far.
 */
export function progressAcrossAttempts(onBytes: ((delta: number) => void) | undefined): () => (n: number) => void {
  let reported = 0;
  return () => {
    let moved = 0;
    return (n: number) => {
      moved += n;
      if (moved > reported) {
        onBytes?.(moved - reported);
        reported = moved;
      }
    };
  };
}

/** The TransferProgress to hand one attempt of a whole-operation retry (see above). */
export function attemptProgress<P extends TransferProgress>(options: P | undefined): () => P | undefined {
  if (!options?.onBytes) return () => options;
  const next = progressAcrossAttempts(options.onBytes);
  return () => ({ ...options, onBytes: next() });
}

/**
 * A conditional put that timed out may have landed; its retry then loses to our own write
 * (CONDITION_FAILED). If the object now holds exactly our bytes, the write did happen.
 * Whoever retries a conditional put calls this on CONDITION_FAILED after a retry.
 */
export async function resolveOwnWrite(
  read: () => Promise<{ body: Buffer; etag: string }>,
  body: Buffer | string,
): Promise<{ etag: string } | undefined> {
  try {
    const current = await read();
    const wanted = typeof body === 'string' ? Buffer.from(body) : body;
    return current.body.equals(wanted) ? { etag: current.etag } : undefined;
  } catch {
    return undefined;
  }
}
