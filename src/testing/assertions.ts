import { inspect } from 'node:util';
import { expect } from 'vitest';
import { CairnError, type ErrorCode } from '../core/errors.js';

/**
 * Asserts that `subject` fails with a CairnError of `code`, and returns that error for any
 * further checks (details, retryable). `subject` is a promise, or a function returning one
 * (or throwing synchronously). Only the code is asserted, never the message.
 */
export async function expectCode(subject: PromiseLike<unknown> | (() => unknown), code: ErrorCode): Promise<CairnError> {
  let settled: { ok: true; value: unknown } | { ok: false; error: unknown };
  try {
    settled = { ok: true, value: await (typeof subject === 'function' ? subject() : subject) };
  } catch (error) {
    settled = { ok: false, error };
  }
  if (settled.ok) return expect.unreachable(`expected ${code}, but the call succeeded with ${inspect(settled.value, { depth: 2 }).slice(0, 200)}`);
  const { error } = settled;
  if (!(error instanceof CairnError)) return expect.unreachable(`expected a CairnError ${code}, got ${inspect(error, { depth: 2 }).slice(0, 500)}`);
  expect(error.code, String(error)).toBe(code);
  return error;
}
