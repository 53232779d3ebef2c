import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The one backoff formula in Cairn: exponential with full jitter (AWS's "full jitter"), so
 * many workers retrying against one throttled bucket or one restarting broker spread out
 * instead of retrying in lockstep. Every retry loop (store requests, pointer updates, lock
 * waits, log outages) takes its delay from here with its own base and cap.
 */
export interface BackoffPolicy {
  /** The cap of the first retry's delay; each further retry doubles it. */
  baseDelayMs: number;
  /** No delay exceeds this. */
  maxDelayMs: number;
}

/** The delay before retry number `attempt` (1 = the first retry). */
export function backoffDelay(attempt: number, policy: BackoffPolicy): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.random() * cap;
}

/** Sleeps the backoff of `attempt`; resolves early (without throwing) when `signal` aborts. */
export async function sleepBackoff(attempt: number, policy: BackoffPolicy, signal?: AbortSignal): Promise<number> {
  const delayMs = backoffDelay(attempt, policy);
  await sleep(delayMs, undefined, signal ? { signal } : {}).catch(() => undefined);
  return delayMs;
}
