/**
 * The one error type Cairn throws. `code` comes from a closed list so callers (and tests)
 * branch on codes, never on messages; whether a failure is worth retrying is data attached
 * to the code, overridable per instance (e.g. an S3 503 vs a 403 share STORE_UNAVAILABLE
 * semantics only when the wrapper says so).
 *
 * Each code also has a `kind`: what a caller does about it, for code that does not care which
 * part failed (docs/decisions/0014-error-kinds.md):
 * - `bad-input`   — fix the input or configuration; retrying the same call cannot help;
 * - `unavailable` — something did not answer; the same call may succeed later;
 * - `conflict`    — someone else changed or holds the thing; re-read and decide again;
 * - `missing`     — what was asked for does not exist;
 * - `corrupt`     — stored bytes are wrong; an operator looks (or another copy is used);
 * - `failed`      — the operation cannot succeed as things are (a refused request, a full
 *                   disk, the user's processor threw);
 * - `aborted`     — the caller cancelled;
 * - `internal`    — a bug.
 */
export type ErrorKind = 'bad-input' | 'unavailable' | 'conflict' | 'missing' | 'corrupt' | 'failed' | 'aborted' | 'internal';

export const ERROR_CODES = {
  /** Bad usage or bad input: names, flags, malformed records. CLI exit 2. */
  BAD_INPUT: { retryable: false, exit: 2, kind: 'bad-input' },
  /** The configuration file is invalid. CLI exit 2. */
  INVALID_CONFIG: { retryable: false, exit: 2, kind: 'bad-input' },
  /** An object, snapshot, partition or key does not exist. */
  NOT_FOUND: { retryable: false, exit: 1, kind: 'missing' },
  /** A conditional write lost: If-Match / If-None-Match did not hold. */
  CONDITION_FAILED: { retryable: false, exit: 1, kind: 'conflict' },
  /**
   * A compare-and-swap (latest.json) kept losing to concurrent writers. Contention, not an
   * outage: the store answered every request. Final once returned (the loop already retried).
   */
  CONFLICT: { retryable: false, exit: 1, kind: 'conflict' },
  /**
   * This worker no longer owns the partition: a rebalance gave it to another member of the
   * group. Nothing of it was published or committed; the worker drops the partition.
   */
  FENCED: { retryable: false, exit: 1, kind: 'conflict' },
  /** The object store could not be reached or answered with a temporary failure. */
  STORE_UNAVAILABLE: { retryable: true, exit: 1, kind: 'unavailable' },
  /** The object store refused the request for a permanent reason (auth, bad bucket). */
  STORE_FAILED: { retryable: false, exit: 1, kind: 'failed' },
  /** The log could not be reached or answered with a temporary failure. */
  LOG_UNAVAILABLE: { retryable: true, exit: 1, kind: 'unavailable' },
  /** The log is held by another process (embedded log is single-process). */
  LOG_BUSY: { retryable: true, exit: 1, kind: 'conflict' },
  /** The log no longer holds a needed LSN and no snapshot covers the gap. */
  TRIM_GAP: { retryable: false, exit: 1, kind: 'missing' },
  /** Stored bytes do not match their recorded size or sha256, or a document does not parse. */
  CORRUPT: { retryable: false, exit: 1, kind: 'corrupt' },
  /** No snapshot exists (or none usable) for the partition. */
  NO_SNAPSHOT: { retryable: false, exit: 1, kind: 'missing' },
  /** The local state folder is open by another process or otherwise unusable. */
  STATE_UNAVAILABLE: { retryable: false, exit: 1, kind: 'conflict' },
  /** A local disk (state, staging, restore target or the filesystem store) is full. Freeing space fixes it. */
  DISK_FULL: { retryable: true, exit: 1, kind: 'failed' },
  /** The user's processor threw or returned something invalid. */
  PROCESSOR_FAILED: { retryable: false, exit: 1, kind: 'failed' },
  /**
   * A server this process starts could not listen (the port is taken, the address is not
   * this machine's). Not the user's input: the same flags work once the port is free.
   */
  LISTEN_FAILED: { retryable: false, exit: 1, kind: 'unavailable' },
  /** The operation was cancelled (signal, shutdown). */
  ABORTED: { retryable: false, exit: 1, kind: 'aborted' },
  /** A bug: an invariant did not hold. */
  INTERNAL: { retryable: false, exit: 1, kind: 'internal' },
} as const satisfies Record<string, { retryable: boolean; exit: number; kind: ErrorKind }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface CairnErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  details?: Record<string, unknown>;
}

/**
 * Marks Cairn's errors across copies of the package: two installed versions (a library and
 * the app both depending on it) each have their own CairnError class, so `instanceof` against
 * one misses errors from the other. The registry symbol is the same in both.
 */
const BRAND = Symbol.for('cairn-state.CairnError');

export class CairnError extends Error {
  /** `err instanceof CairnError` holds for a CairnError from any copy of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: CairnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CairnError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
    this.details = options.details;
  }

  /** What a caller does about it (see ErrorKind). */
  get kind(): ErrorKind {
    return ERROR_CODES[this.code].kind;
  }

  /** The CLI exit code this error maps to (0 is never returned). */
  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  toJSON(): { code: ErrorCode; kind: ErrorKind; message: string; retryable: boolean; details?: Record<string, unknown> } {
    return { code: this.code, kind: this.kind, message: this.message, retryable: this.retryable, ...(this.details ? { details: this.details } : {}) };
  }
}

// On the prototype: every CairnError of this copy carries the brand another copy checks for.
Object.defineProperty(CairnError.prototype, BRAND, { value: true });

export function isCairnError(err: unknown, code?: ErrorCode): err is CairnError {
  // The brand (see CairnError[Symbol.hasInstance]), so errors from another copy count too.
  return err instanceof CairnError && (code === undefined || err.code === code);
}

/**
 * Wraps anything thrown into a CairnError, keeping CairnErrors as they are. A full disk is
 * DISK_FULL wherever it surfaces (Node's ENOSPC, or LevelDB's "No space left on device"
 * inside an IO error), so no layer needs to know every path a write can take.
 */
export function toCairnError(err: unknown, fallback: ErrorCode = 'INTERNAL'): CairnError {
  if (err instanceof CairnError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (isDiskFull(err)) return new CairnError('DISK_FULL', `no space left on device: ${message}`, { cause: err });
  return new CairnError(fallback, message, { cause: err });
}

export function isDiskFull(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.code === 'ENOSPC' || (typeof e.message === 'string' && /No space left on device/i.test(e.message))) return true;
  }
  return false;
}

export function badInput(message: string, details?: Record<string, unknown>): CairnError {
  return new CairnError('BAD_INPUT', message, details ? { details } : {});
}
