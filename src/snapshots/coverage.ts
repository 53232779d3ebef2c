/**
 * The one rule behind every trim-gap decision: whether state at some LSN (a snapshot, a
 * processor's local state, the empty state) can resume on a log that may have been trimmed.
 * Bootstrap, the running processor's trim-gap recovery, fork catch-up and creation, and the
 * trim policy (coordinator and `cairn log trim`) all ask it here, so the off-by-one is
 * written once.
 *
 * It lives in the snapshots layer because that is the lowest one all of them import; the log
 * itself only knows "a read below my start is a trim gap", not what state needs.
 */

/** The LSN of the empty state: nothing applied yet, every record from LSN 0 still needed. */
export const EMPTY_STATE_LSN = -1;

/**
 * The first LSN that state at `lsn` still needs from the log, and so the highest first
 * retained LSN (log start) it can resume on: the record right after it. State at LSN s holds
 * every record up to and including s. A trim to this point is exactly as far as the log may
 * go for that state (the coordinator's bound is this of the archived snapshot).
 */
export function resumeLsn(lsn: number): number {
  return lsn + 1;
}

/**
 * Whether state at LSN `lsn` covers a log whose first retained LSN is `logStart`, i.e. can
 * resume on it with no record missing: `logStart <= lsn + 1`. Equal is covered (the log
 * starts exactly at the record it needs next); `logStart > lsn + 1` is a trim gap, records
 * lsn + 1 .. logStart - 1 are gone. The empty state (EMPTY_STATE_LSN) covers only an
 * untrimmed log (start 0).
 */
export function coversLogStart(lsn: number, logStart: number): boolean {
  return logStart <= resumeLsn(lsn);
}
