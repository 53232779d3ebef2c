import { pino, type Logger } from 'pino';
import { CairnError } from './errors.js';

export type { Logger };

/**
 * Structured logs go to stderr as JSON lines so that stdout stays free for command output
 * (`--json` promises exactly one document there). `CAIRN_LOG_LEVEL` overrides the level.
 * Errors are logged under `err`, as the error itself (never `toJSON()`): see serializeError.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  const level = process.env.CAIRN_LOG_LEVEL ?? options.level ?? 'info';
  return pino({ name: options.name ?? 'cairn', level, base: { pid: process.pid }, serializers: { err: serializeError } }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything: the library default, so embedding code opts in to logs. */
export const silentLogger: Logger = pino({ level: 'silent' });

/** How many causes a logged stack follows (a cycle or a deep chain stops there). */
const MAX_CAUSES = 5;

/**
 * The `err` of a log line: a CairnError's code, message, retryable flag and details, and the
 * stack of the error and of each cause under it, so that an exception thrown in a processor's
 * apply (the cause of PROCESSOR_FAILED) is logged with the stack of the user's code. Anything
 * that is not an Error is logged as it is.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { type: err.name, message: err.message };
  if (err instanceof CairnError) {
    out.code = err.code;
    out.retryable = err.retryable;
    if (err.details) out.details = err.details;
  } else {
    const { code } = err as Error & { code?: unknown };
    if (typeof code === 'string') out.code = code;
  }
  out.stack = stackWithCauses(err);
  return out;
}

function stackWithCauses(err: Error): string {
  let text = err.stack ?? `${err.name}: ${err.message}`;
  let cause: unknown = err.cause;
  for (let depth = 0; cause !== undefined && cause !== null && depth < MAX_CAUSES; depth++) {
    text += `\ncaused by: ${cause instanceof Error ? (cause.stack ?? `${cause.name}: ${cause.message}`) : String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}
