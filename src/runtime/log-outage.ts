import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay, type BackoffPolicy } from '../core/backoff.js';
import { CairnError, isCairnError, toCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/** Retries while the log is unreachable: full jitter, up to 200 ms doubling to at most 5 s. */
const LOG_OUTAGE_BACKOFF: BackoffPolicy = { baseDelayMs: 200, maxDelayMs: 5000 };
/** Opens retried, this far apart, while a single-process log is briefly held elsewhere (about 5 s). */
const LOG_BUSY_RETRIES = 20;
const LOG_BUSY_RETRY_MS = 250;

export interface LogOutageOptions {
  partition: string;
  logger: Logger;
  /** How long a bounded (batch) run waits out an unreachable log: `log.unavailableTimeoutMs`. */
  unavailableTimeoutMs: number;
}

/**
 * A processor's view of an unreachable log (a broker restarting, a network cut). The state
 * and its LSN are untouched while the log is away, so reading resumes exactly where it
 * stopped. A long-running worker waits any outage out: it has nothing better to do, and a
 * supervisor restarting it would only wait again. A batch run (--stop-at-end, --until-lsn)
 * has a caller waiting for its outcome, so it waits at most `unavailableTimeoutMs` and then
 * fails LOG_UNAVAILABLE, instead of hanging a pipeline step forever.
 */
export class LogOutage {
  private since: number | undefined;
  private attempts = 0;

  constructor(private readonly o: LogOutageOptions) {}

  /** The log answered: the outage, if any, is over. */
  ended(): void {
    this.since = undefined;
    this.attempts = 0;
  }

  /**
   * Whether `err` is an outage to wait out; if it is, sleeps the backoff and returns true.
   * Returns false for any other error (the caller rethrows it) and once `signal` aborted.
   * `startedAt` is when the failed call began: a call that hung before failing was time
   * the log was unreachable too. In a `bounded` run, throws LOG_UNAVAILABLE once the log
   * has been unreachable for `unavailableTimeoutMs`; the last sleep ends at that deadline.
   */
  async waitOut(err: unknown, o: { signal?: AbortSignal | undefined; bounded: boolean; startedAt?: number; lsn?: number }): Promise<boolean> {
    const e = toCairnError(err);
    if (!e.retryable || e.code !== 'LOG_UNAVAILABLE' || o.signal?.aborted) return false;
    const { partition, logger, unavailableTimeoutMs } = this.o;
    const now = Date.now();
    this.since ??= Math.min(o.startedAt ?? now, now);
    const downForMs = now - this.since;
    let delay = backoffDelay(++this.attempts, LOG_OUTAGE_BACKOFF);
    if (o.bounded) {
      const left = unavailableTimeoutMs - downForMs;
      if (left <= 0) {
        throw new CairnError(
          'LOG_UNAVAILABLE',
          `${partition}: the log has been unreachable for ${downForMs} ms, longer than log.unavailableTimeoutMs (${unavailableTimeoutMs} ms) allows a batch run: ${e.message}`,
          { cause: e, details: { partition, downForMs, unavailableTimeoutMs } },
        );
      }
      delay = Math.min(delay, left);
    }
    logger.warn({ partition, ...(o.lsn !== undefined ? { lsn: o.lsn } : {}), err: e.message, downForMs, retryInMs: Math.round(delay), ...(o.bounded ? { giveUpInMs: unavailableTimeoutMs - downForMs } : {}) }, 'log unavailable; waiting');
    await sleep(delay, undefined, o.signal ? { signal: o.signal } : {}).catch(() => undefined);
    return true;
  }
}

/**
 * `open()` (a processor opening or bootstrapping its state, which reads the log's bounds),
 * waiting while the log is unreachable: a worker started before its broker waits for it like
 * any other outage. `lsn` names the applied LSN in the outage's log lines.
 */
export async function openWaitingForLog<T>(open: () => Promise<T>, outage: LogOutage, o: { partition: string; signal?: AbortSignal | undefined; bounded: boolean; lsn: () => number }): Promise<T> {
  const { signal } = o;
  for (let busy = 0; ; ) {
    const startedAt = Date.now();
    try {
      return await open();
    } catch (err) {
      // A coordinator opens a single-process log for a moment to read or trim it; a few
      // seconds of LOG_BUSY is that, longer is another worker and a real error.
      if (isCairnError(err, 'LOG_BUSY') && busy++ < LOG_BUSY_RETRIES && !signal?.aborted) {
        await sleep(LOG_BUSY_RETRY_MS, undefined, signal ? { signal } : {}).catch(() => undefined);
        continue;
      }
      if (await outage.waitOut(err, { signal, bounded: o.bounded, startedAt, lsn: o.lsn() })) continue;
      if (signal?.aborted) throw new CairnError('ABORTED', `${o.partition}: stopped while waiting for the log`, { cause: err });
      throw err;
    }
  }
}
