import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { mapS3Error } from '../../src/store/s3/errors.js';
import { ByteBudget, partRanges, runAllOrAbort } from '../../src/store/transfer.js';

/** The pure pieces under the S3 backend's transfers, tested on their own. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('partRanges', () => {
  it('covers [0, size) with contiguous parts of partSize, the last one shorter', () => {
    expect(partRanges(0, 5)).toEqual([]);
    expect(partRanges(10, 5)).toEqual([{ start: 0, end: 5 }, { start: 5, end: 10 }]);
    expect(partRanges(11, 5)).toEqual([{ start: 0, end: 5 }, { start: 5, end: 10 }, { start: 10, end: 11 }]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 1, max: 999 }), (size, part) => {
        const ranges = partRanges(size, part);
        expect(ranges.reduce((n, r) => n + (r.end - r.start), 0)).toBe(size);
        ranges.forEach((r, i) => {
          expect(r.start).toBe(i * part);
          expect(r.end - r.start).toBeLessThanOrEqual(part);
          expect(r.end).toBeGreaterThan(r.start);
        });
      }),
    );
  });
});

describe('ByteBudget', () => {
  it('never holds more than its limit at once (a request above it runs alone), and serves waiters in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 100 }), fc.array(fc.record({ n: fc.integer({ min: 1, max: 150 }), ticks: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 30 }), async (limit, jobs) => {
        const budget = new ByteBudget(limit);
        let held = 0;
        let running = 0;
        const started: number[] = [];
        await Promise.all(
          jobs.map((job, i) =>
            budget.with(job.n, async () => {
              held += job.n;
              running++;
              started.push(i);
              // Over the limit only when it is the one request running.
              if (held > limit) expect(running).toBe(1);
              for (let t = 0; t < job.ticks; t++) await tick();
              held -= job.n;
              running--;
            }),
          ),
        );
        expect(held).toBe(0);
        // FIFO: a large request is not overtaken by later small ones.
        expect(started).toEqual(jobs.map((_, i) => i));
      }),
      { numRuns: 200 },
    );
  });

  it('releases what a failed job held', async () => {
    const budget = new ByteBudget(10);
    await expect(budget.with(10, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await budget.with(10, async () => 'after')).toBe('after');
  });
});

describe('runAllOrAbort', () => {
  it('returns every result in order when all succeed', async () => {
    expect(await runAllOrAbort(undefined, [3, 1, 2], async (n, _s, i) => `${i}:${n}`)).toEqual(['0:3', '1:1', '2:2']);
  });

  it('on the first failure aborts the others, waits for all of them to stop, and rethrows that first failure', async () => {
    const stopped: number[] = [];
    const reasons: unknown[] = [];
    const first = new Error('first');
    const outcome = runAllOrAbort(undefined, [0, 1, 2, 3], async (n, signal) => {
      try {
        if (n === 1) {
          await tick();
          throw first;
        }
        // 2 fails too, but after 1: its error is not the one thrown.
        if (n === 2) {
          for (let t = 0; t < 3; t++) await tick();
          throw new Error('later');
        }
        // The others run until aborted, then take a while to wind down.
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        reasons.push(signal.reason);
        for (let t = 0; t < 5; t++) await tick();
        return n;
      } finally {
        stopped.push(n);
      }
    });
    await expect(outcome).rejects.toBe(first);
    // Every item had stopped before the failure was rethrown.
    expect(stopped.sort()).toEqual([0, 1, 2, 3]);
    expect(reasons).toEqual([first, first]);
  });

  it('an outer abort reaches every item', async () => {
    const outer = new AbortController();
    const seen: boolean[] = [];
    const run = runAllOrAbort(outer.signal, [0, 1], async (_n, signal) => {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      seen.push(signal.aborted);
      throw new CairnError('ABORTED', 'stopped');
    });
    outer.abort();
    await expect(run).rejects.toMatchObject({ code: 'ABORTED' });
    expect(seen).toEqual([true, true]);
  });
});

describe('mapS3Error', () => {
  const sdk = (name: string, status?: number, extra: Record<string, unknown> = {}) => Object.assign(new Error(`${name} happened`), { name, ...(status ? { $metadata: { httpStatusCode: status } } : {}), ...extra });
  const cases: Array<[string, unknown, { conditional?: boolean }, string, boolean]> = [
    ['missing key', sdk('NoSuchKey', 404), {}, 'NOT_FOUND', false],
    ['missing key under If-Match', sdk('NoSuchKey', 404), { conditional: true }, 'CONDITION_FAILED', false],
    ['412', sdk('PreconditionFailed', 412), {}, 'CONDITION_FAILED', false],
    ['409 on a conditional write', sdk('OperationAborted', 409), { conditional: true }, 'CONDITION_FAILED', false],
    ['a body that does not match its hash', sdk('XAmzContentSHA256Mismatch', 400), {}, 'CORRUPT', false],
    ['missing bucket', sdk('NoSuchBucket', 404), {}, 'STORE_FAILED', false],
    ['access denied', sdk('AccessDenied', 403), {}, 'STORE_FAILED', false],
    ['503 slow down', sdk('SlowDown', 503), {}, 'STORE_UNAVAILABLE', true],
    ['429', sdk('TooManyRequests', 429), {}, 'STORE_UNAVAILABLE', true],
    ['throttling without a status', sdk('Throttling'), {}, 'STORE_UNAVAILABLE', true],
    ['connection refused', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), {}, 'STORE_UNAVAILABLE', true],
    ['socket hang up', new Error('socket hang up'), {}, 'STORE_UNAVAILABLE', true],
    ['a bad range', sdk('InvalidRange', 416), {}, 'BAD_INPUT', false],
    ['a full local disk', Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }), {}, 'DISK_FULL', true],
  ];
  it.each(cases)('%s', (_what, err, ctx, code, retryable) => {
    const mapped = mapS3Error(err, { op: 'get', key: 'p0/x', ...ctx });
    expect({ code: mapped.code, retryable: mapped.retryable }).toEqual({ code, retryable });
    expect(mapped.details).toMatchObject({ op: 'get', key: 'p0/x' });
    expect(mapped.cause).toBe(err);
  });

  it('is ABORTED whatever the error once the caller aborted, and passes CairnErrors through', () => {
    const controller = new AbortController();
    controller.abort();
    expect(mapS3Error(sdk('SlowDown', 503), { op: 'get', signal: controller.signal }).code).toBe('ABORTED');
    const own = new CairnError('CORRUPT', 'already mapped');
    expect(mapS3Error(own, { op: 'get' })).toBe(own);
  });
});
