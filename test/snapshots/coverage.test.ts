import { describe, expect, it } from 'vitest';
import { coversLogStart, EMPTY_STATE_LSN, resumeLsn } from '../../src/snapshots/coverage.js';

/**
 * The one rule every trim-gap decision uses (bootstrap, trim-gap recovery, forks, the trim
 * policy): state at LSN s resumes on a log whose first retained LSN is at most s + 1.
 */
describe('coversLogStart', () => {
  it('covers a log that starts at or before the record after the state, and no later', () => {
    expect(coversLogStart(99, 0)).toBe(true);
    expect(coversLogStart(99, 99)).toBe(true);
    expect(coversLogStart(99, 100)).toBe(true); // the log starts exactly at the record it needs next
    expect(coversLogStart(99, 101)).toBe(false); // LSN 100 is gone: a trim gap
  });

  it('lets the empty state resume only on an untrimmed log', () => {
    expect(EMPTY_STATE_LSN).toBe(-1);
    expect(coversLogStart(EMPTY_STATE_LSN, 0)).toBe(true);
    expect(coversLogStart(EMPTY_STATE_LSN, 1)).toBe(false);
  });

  it('agrees with resumeLsn, the highest log start a state covers', () => {
    for (const lsn of [EMPTY_STATE_LSN, 0, 1, 41, 4008]) {
      expect(resumeLsn(lsn)).toBe(lsn + 1);
      expect(coversLogStart(lsn, resumeLsn(lsn))).toBe(true);
      expect(coversLogStart(lsn, resumeLsn(lsn) + 1)).toBe(false);
    }
  });
});
