import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { attemptProgress, progressAcrossAttempts, resolveOwnWrite, retryRequest, type AttemptsInfo, type RetryInfo, type RetryPolicy } from '../../src/store/request-retry.js';
import type { DownloadOptions } from '../../src/store/types.js';
import { expectCode } from '../helpers/fixtures.js';

/**
 * The one retry loop of object-store requests (it replaced transfer.ts's per-part
 * `withPartRetry`): which failures it retries, how many attempts it makes, the final error
 * it leaves, what it reports, how an abort ends it, and how progress is counted once across
 * attempts. No timing is asserted: backoffs are 0 ms (or never waited out).
 */

const NO_WAIT: RetryPolicy = { attempts: 4, baseDelayMs: 0, maxDelayMs: 0 };

const outage = (n = 0) => new CairnError('STORE_UNAVAILABLE', `503 #${n}`, { details: { status: 503 }, cause: new Error(`socket #${n}`) });

/** Records what a request reported through its hooks. */
function recorder() {
  const retries: RetryInfo[] = [];
  const settled: AttemptsInfo[] = [];
  return { retries, settled, hooks: { onRetry: (i: RetryInfo) => retries.push(i), onAttempts: (i: AttemptsInfo) => settled.push(i) } };
}

/** An attempt function that plays `script` (an error to throw, or a value to return) in order. */
function scripted<T>(script: Array<{ throw: unknown } | { value: T }>) {
  const calls: number[] = [];
  const attempt = async (n: number): Promise<T> => {
    calls.push(n);
    const step = script[calls.length - 1];
    if (!step) throw new Error(`attempt ${n} beyond the script`);
    if ('throw' in step) throw step.throw;
    return step.value;
  };
  return { attempt, calls };
}

describe('retryRequest', () => {
  it('a first success is one attempt: no retry reported, settled ok after 1', async () => {
    const r = recorder();
    const s = scripted([{ value: 'v' }]);
    expect(await retryRequest(NO_WAIT, r.hooks, { op: 'get', key: 'k' }, s.attempt)).toBe('v');
    expect(s.calls).toEqual([1]);
    expect(r.retries).toEqual([]);
    expect(r.settled).toEqual([{ op: 'get', key: 'k', attempts: 1, outcome: 'ok' }]);
  });

  it('retries outages with 1-based attempt numbers, reporting each retry and the settled count once', async () => {
    const r = recorder();
    const errors = [outage(1), outage(2)];
    const s = scripted<string>([{ throw: errors[0] }, { throw: errors[1] }, { value: 'third time' }]);
    expect(await retryRequest(NO_WAIT, r.hooks, { op: 'put', key: 'a/b' }, s.attempt)).toBe('third time');
    expect(s.calls).toEqual([1, 2, 3]);
    expect(r.retries.map((i) => [i.op, i.key, i.attempt, i.error])).toEqual([
      ['put', 'a/b', 1, errors[0]],
      ['put', 'a/b', 2, errors[1]],
    ]);
    expect(r.settled).toEqual([{ op: 'put', key: 'a/b', attempts: 3, outcome: 'ok' }]);
  });

  it('takes each backoff from the full-jitter formula: within [0, min(max, base * 2^(attempt-1))]', async () => {
    const r = recorder();
    const policy: RetryPolicy = { attempts: 6, baseDelayMs: 1, maxDelayMs: 4 };
    const s = scripted<number>([...Array.from({ length: 5 }, (_, i) => ({ throw: outage(i) })), { value: 1 }]);
    await retryRequest(policy, r.hooks, { op: 'get' }, s.attempt);
    expect(r.retries.map((i) => i.attempt)).toEqual([1, 2, 3, 4, 5]);
    for (const i of r.retries) {
      expect(i.delayMs).toBeGreaterThanOrEqual(0);
      expect(i.delayMs).toBeLessThanOrEqual(Math.min(4, 2 ** (i.attempt - 1)));
    }
  });

  it.each<[string, CairnError]>([
    ['NOT_FOUND', new CairnError('NOT_FOUND', 'no such key')],
    ['CONDITION_FAILED', new CairnError('CONDITION_FAILED', 'etag moved')],
    ['STORE_FAILED', new CairnError('STORE_FAILED', '403')],
    ['a full disk, retryable but not an outage', new CairnError('DISK_FULL', 'ENOSPC')],
    ['a log outage', new CairnError('LOG_UNAVAILABLE', 'broker down')],
    ['an exhausted outage (retryable: false)', new CairnError('STORE_UNAVAILABLE', 'gave up', { retryable: false })],
  ])('surfaces %s at once, the same error object, after one attempt', async (_, error) => {
    const r = recorder();
    const s = scripted([{ throw: error }]);
    const thrown = await expectCode(retryRequest(NO_WAIT, r.hooks, { op: 'head', key: 'k' }, s.attempt), error.code);
    expect(thrown).toBe(error);
    expect(s.calls).toEqual([1]);
    expect(r.retries).toEqual([]);
    expect(r.settled).toEqual([{ op: 'head', key: 'k', attempts: 1, outcome: error.code }]);
  });

  it('when the attempts run out the error is final: same code and details, retryable false, details.attempts', async () => {
    const r = recorder();
    const last = outage(4);
    const s = scripted([{ throw: outage(1) }, { throw: outage(2) }, { throw: outage(3) }, { throw: last }]);
    const err = await expectCode(retryRequest(NO_WAIT, r.hooks, { op: 'uploadFile', key: 'k' }, s.attempt), 'STORE_UNAVAILABLE');
    expect(s.calls).toEqual([1, 2, 3, 4]);
    expect(err.retryable).toBe(false);
    expect(err.details).toEqual({ status: 503, attempts: 4 });
    expect(err.cause).toBe(last.cause);
    expect(r.retries).toHaveLength(3);
    expect(r.settled).toEqual([{ op: 'uploadFile', key: 'k', attempts: 4, outcome: 'STORE_UNAVAILABLE' }]);
  });

  it('attempts: 1 never retries, and its outage is final too', async () => {
    const s = scripted([{ throw: outage() }]);
    const err = await expectCode(retryRequest({ ...NO_WAIT, attempts: 1 }, {}, { op: 'get' }, s.attempt), 'STORE_UNAVAILABLE');
    expect(s.calls).toEqual([1]);
    expect(err.retryable).toBe(false);
    expect(err.details?.attempts).toBe(1);
  });

  it('a retry loop stacked on another does not multiply attempts: the inner final error is not retried', async () => {
    let requests = 0;
    const inner = () =>
      retryRequest({ ...NO_WAIT, attempts: 3 }, {}, { op: 'inner' }, async () => {
        requests++;
        throw outage(requests);
      });
    const err = await expectCode(retryRequest({ ...NO_WAIT, attempts: 4 }, {}, { op: 'outer' }, inner), 'STORE_UNAVAILABLE');
    expect(requests).toBe(3);
    expect(err.details?.attempts).toBe(3);
  });

  it('maps what an attempt threw through toError; a mapping to a non-CairnError passes through as INTERNAL', async () => {
    const toError = (e: unknown) => (e === 'reset' ? outage() : e);
    const s = scripted<string>([{ throw: 'reset' }, { value: 'ok' }]);
    expect(await retryRequest(NO_WAIT, {}, { op: 'get' }, s.attempt, toError)).toBe('ok');
    expect(s.calls).toEqual([1, 2]);

    const bug = new TypeError('not a store error');
    const r = recorder();
    const t = scripted([{ throw: bug }]);
    await expect(retryRequest(NO_WAIT, r.hooks, { op: 'get' }, t.attempt, toError)).rejects.toBe(bug);
    expect(t.calls).toEqual([1]);
    expect(r.settled.map((i) => i.outcome)).toEqual(['INTERNAL']);
  });

  it('an abort during the backoff ends the request at once with ABORTED, caused by the outage', async () => {
    const controller = new AbortController();
    const r = recorder();
    const error = outage();
    const s = scripted([{ throw: error }, { value: 'never' }]);
    // A backoff no test would wait out: only the abort can end it.
    const policy: RetryPolicy = { attempts: 5, baseDelayMs: 3_600_000, maxDelayMs: 3_600_000 };
    const hooks = { ...r.hooks, onRetry: (i: RetryInfo) => (r.hooks.onRetry(i), controller.abort()) };
    const err = await expectCode(retryRequest(policy, hooks, { op: 'downloadFile', key: 'k', signal: controller.signal }, s.attempt), 'ABORTED');
    expect(err.cause).toBe(error);
    expect(s.calls).toEqual([1]);
    expect(r.settled).toEqual([{ op: 'downloadFile', key: 'k', attempts: 1, outcome: 'ABORTED' }]);
  });

  it('an attempt that fails after its signal aborted is ABORTED whatever it failed with, and not retried', async () => {
    for (const error of [outage(), new CairnError('NOT_FOUND', 'gone')]) {
      const controller = new AbortController();
      const s = scripted([{ throw: error }, { value: 'never' }]);
      const attempt = (n: number) => (controller.abort(), s.attempt(n));
      const err = await expectCode(retryRequest(NO_WAIT, {}, { op: 'get', signal: controller.signal }, attempt), 'ABORTED');
      expect(err.cause).toBe(error);
      expect(s.calls).toEqual([1]);
    }
  });

  it('property: attempts and outcome follow the model (outages retried until success, another error, or the budget)', async () => {
    type Step = 'outage' | 'ok' | 'NOT_FOUND' | 'CONDITION_FAILED';
    const step = fc.constantFrom<Step>('outage', 'outage', 'ok', 'NOT_FOUND', 'CONDITION_FAILED');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.array(step, { minLength: 6, maxLength: 6 }), async (attempts, script) => {
        const r = recorder();
        const s = scripted<string>(script.map((k) => (k === 'ok' ? { value: 'v' } : { throw: k === 'outage' ? outage() : new CairnError(k, k) })));
        const outcome = await retryRequest({ ...NO_WAIT, attempts }, r.hooks, { op: 'get' }, s.attempt).then(
          () => 'ok',
          (e: CairnError) => `${e.code}${e.retryable ? '' : '!'}`,
        );
        // The model: the first step that is not an outage decides, unless the budget runs out first.
        const decisive = script.findIndex((k) => k !== 'outage');
        const made = decisive === -1 || decisive >= attempts ? attempts : decisive + 1;
        const expected = made === decisive + 1 ? (script[decisive] === 'ok' ? 'ok' : `${script[decisive]}!`) : 'STORE_UNAVAILABLE!';
        expect(s.calls).toEqual(Array.from({ length: made }, (_, i) => i + 1));
        expect(outcome).toBe(expected);
        expect(r.retries).toHaveLength(made - 1);
        expect(r.settled).toEqual([{ op: 'get', key: undefined, attempts: made, outcome: expected === 'ok' ? 'ok' : expected.slice(0, -1) }]);
      }),
      { numRuns: 200 },
    );
  });
});

describe('progress across attempts', () => {
  it('a retried attempt reports only the bytes beyond what earlier attempts reported', () => {
    const deltas: number[] = [];
    const next = progressAcrossAttempts((d) => deltas.push(d));
    const first = next();
    first(100);
    first(50); // 150, then the attempt fails
    const second = next();
    second(100); // 100: nothing new
    second(30); // 130: nothing new
    second(40); // 170: 20 new
    second(0);
    second(30); // 200: 30 new
    expect(deltas).toEqual([100, 50, 20, 30]);
  });

  it('property: the deltas add up to the most any attempt moved, each one positive, never exceeding it', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.nat(1000), { maxLength: 8 }), { maxLength: 6 }), (attempts) => {
        const deltas: number[] = [];
        const next = progressAcrossAttempts((d) => deltas.push(d));
        let most = 0;
        for (const chunks of attempts) {
          const report = next();
          let moved = 0;
          for (const n of chunks) {
            report(n);
            moved += n;
            most = Math.max(most, moved);
            expect(deltas.reduce((a, b) => a + b, 0)).toBe(most);
          }
        }
        expect(deltas.every((d) => d > 0)).toBe(true);
      }),
    );
  });

  it('without onBytes the reporters are no-ops', () => {
    const next = progressAcrossAttempts(undefined);
    expect(() => next()(10)).not.toThrow();
  });

  it('attemptProgress hands each attempt the options with its own deduplicating onBytes', () => {
    expect(attemptProgress(undefined)()).toBeUndefined();
    const plain: DownloadOptions = { sha256: true, signal: new AbortController().signal };
    expect(attemptProgress(plain)()).toBe(plain);

    const deltas: number[] = [];
    const signal = new AbortController().signal;
    const options: DownloadOptions = { signal, sha256: true, onBytes: (d: number) => deltas.push(d) };
    const next = attemptProgress(options);
    const a = next()!;
    expect(a.signal).toBe(signal);
    expect(a.sha256).toBe(true);
    expect(a.onBytes).not.toBe(options.onBytes);
    a.onBytes!(10);
    const b = next()!;
    b.onBytes!(4);
    b.onBytes!(10);
    expect(deltas).toEqual([10, 4]);
  });
});

describe('resolveOwnWrite', () => {
  it('is our write when the object holds exactly our bytes (a string body compared as UTF-8)', async () => {
    expect(await resolveOwnWrite(async () => ({ body: Buffer.from('été'), etag: 'e1' }), 'été')).toEqual({ etag: 'e1' });
    expect(await resolveOwnWrite(async () => ({ body: Buffer.from([1, 2]), etag: 'e2' }), Buffer.from([1, 2]))).toEqual({ etag: 'e2' });
  });

  it('is not ours when the bytes differ, or when the read-back fails for any reason', async () => {
    expect(await resolveOwnWrite(async () => ({ body: Buffer.from('theirs'), etag: 'e' }), 'mine')).toBeUndefined();
    expect(await resolveOwnWrite(async () => ({ body: Buffer.from('mine!'), etag: 'e' }), 'mine')).toBeUndefined();
    expect(await resolveOwnWrite(async () => ({ body: Buffer.from('mind'), etag: 'e' }), 'mine')).toBeUndefined(); // same size, other bytes
    const failures: Array<() => Promise<never>> = [async () => Promise.reject(outage()), async () => Promise.reject(new CairnError('NOT_FOUND', 'gone'))];
    for (const read of failures) expect(await resolveOwnWrite(read, 'mine')).toBeUndefined();
  });
});
