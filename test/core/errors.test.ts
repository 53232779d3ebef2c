import { describe, expect, it } from 'vitest';
import { CairnError, ERROR_CODES, isCairnError, toCairnError, type ErrorCode } from '../../src/core/errors.js';

describe('CairnError', () => {
  it('is recognised across two copies of the package (a brand, not class identity)', async () => {
    // The query string makes the bundler load the module a second time: its own CairnError class.
    const secondCopy: string = '../../src/core/errors.ts?second-copy';
    const other = (await import(secondCopy)) as typeof import('../../src/core/errors.js');
    expect(other.CairnError).not.toBe(CairnError);
    const theirs = new other.CairnError('NOT_FOUND', 'from the other copy');
    expect(theirs instanceof CairnError).toBe(true);
    expect(isCairnError(theirs, 'NOT_FOUND')).toBe(true);
    expect(other.isCairnError(new CairnError('CORRUPT', 'from this copy'), 'CORRUPT')).toBe(true);
    // toCairnError keeps it as it is instead of wrapping it as INTERNAL.
    expect(toCairnError(theirs)).toBe(theirs);
    expect(new Error('plain') instanceof CairnError).toBe(false);
    expect(isCairnError({ code: 'NOT_FOUND', message: 'look-alike' })).toBe(false);
  });

  it('every code has a kind; bad-input is the user input codes and nothing else', () => {
    const byKind = new Map<string, ErrorCode[]>();
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      const kind = new CairnError(code, 'x').kind;
      byKind.set(kind, [...(byKind.get(kind) ?? []), code]);
    }
    expect(byKind.get('bad-input')).toEqual(['BAD_INPUT', 'INVALID_CONFIG']);
    expect(new CairnError('LISTEN_FAILED', 'port taken').kind).toBe('unavailable');
    expect(new CairnError('LISTEN_FAILED', 'port taken').exitCode).toBe(1);
    expect([...byKind.keys()].sort()).toEqual(['aborted', 'bad-input', 'conflict', 'corrupt', 'failed', 'internal', 'missing', 'unavailable']);
    expect(new CairnError('STORE_UNAVAILABLE', 'down').toJSON()).toMatchObject({ code: 'STORE_UNAVAILABLE', kind: 'unavailable', retryable: true });
  });
});
