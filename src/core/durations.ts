import ms from 'ms';
import { z } from 'zod';
import { badInput } from './errors.js';

/**
 * Durations, as the config file and the CLI take them: a number of milliseconds (`60000`), or
 * text as vercel/ms reads it — `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`, `"1.5h"`,
 * `"90 seconds"`; a bare number in text (`"500"`) is milliseconds. One parser for every
 * duration (config fields through `duration()`, CLI flags through `durationFlag()`), so the
 * two never disagree on what a duration is. Normalised configs hold plain milliseconds.
 */

/** What an error says a duration looks like. */
const EXPECTED = 'expected a duration such as 250ms, 30s, 5m or 1h, or a number of milliseconds';

/**
 * Milliseconds of `value`, as written (possibly negative or fractional); undefined when the
 * text is not a duration at all.
 */
function readDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return value;
  const text = value.trim();
  // ms() throws on '' and answers undefined beyond 100 characters or for anything else it cannot read.
  if (text === '' || text.length > 100) return undefined;
  const n = ms(text as ms.StringValue);
  return Number.isFinite(n) ? n : undefined;
}

/** A whole, non-negative number of milliseconds, or undefined when `value` is not one. */
export function parseDuration(value: string | number): number | undefined {
  const n = readDuration(value);
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** `60000` as `1m`, `1500` as `1500ms`: the short form ms() writes when it is exact, else milliseconds. */
export function formatDuration(milliseconds: number): string {
  const short = Number.isSafeInteger(milliseconds) && milliseconds > 0 ? ms(milliseconds) : undefined;
  return short !== undefined && ms(short as ms.StringValue) === milliseconds ? short : `${milliseconds}ms`;
}

/** `300000` as `300000 ms (5m)`: the milliseconds, and the short form when it is exact. */
export function describeDuration(milliseconds: number): string {
  const short = formatDuration(milliseconds);
  return short === `${milliseconds}ms` ? `${milliseconds} ms` : `${milliseconds} ms (${short})`;
}

export interface DurationBounds {
  /** Inclusive, in milliseconds; default 0. */
  min?: number;
  /** Inclusive, in milliseconds; default none. */
  max?: number;
}

/**
 * The zod schema of a duration field: a number of milliseconds or a duration string in,
 * whole milliseconds within the bounds out. Chain `.default(ms)` (a DEFAULTS constant) or
 * `.optional()` as for any field; a bad value is one issue on the field's path, which
 * normaliseConfig reports as INVALID_CONFIG naming the field.
 */
export function duration(bounds: DurationBounds = {}) {
  const min = bounds.min ?? 0;
  let milliseconds = z
    .number()
    .int('expected a whole number of milliseconds')
    .min(min, `expected at least ${describeDuration(min)}`);
  if (bounds.max !== undefined) milliseconds = milliseconds.max(bounds.max, `expected at most ${describeDuration(bounds.max)}`);
  return z
    .union([z.number(), z.string()], { error: EXPECTED })
    .transform((value, ctx) => {
      const n = readDuration(value);
      if (n === undefined) {
        ctx.addIssue({ code: 'custom', message: `${EXPECTED}, not ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return n;
    })
    .pipe(milliseconds);
}

/**
 * A CLI flag's duration (`--trim-interval 30s`, `--trim-delay 600000`): BAD_INPUT naming the
 * flag when it is not a whole, non-negative number of milliseconds within the bounds.
 */
export function durationFlag(text: string, flag: string, bounds: DurationBounds = {}): number {
  const n = parseDuration(text);
  if (n === undefined) throw badInput(`invalid ${flag} ${JSON.stringify(text)}: ${EXPECTED}`);
  if (bounds.min !== undefined && n < bounds.min) throw badInput(`invalid ${flag} ${JSON.stringify(text)}: expected at least ${describeDuration(bounds.min)}`);
  if (bounds.max !== undefined && n > bounds.max) throw badInput(`invalid ${flag} ${JSON.stringify(text)}: expected at most ${describeDuration(bounds.max)}`);
  return n;
}
