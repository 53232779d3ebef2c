import { isCairnError } from '../core/errors.js';
import type { LogInfo } from '../log/types.js';
import type { SnapshotRepository } from '../snapshots/repository.js';

/**
 * The coordinator's trim decision (DESIGN.md, "Trim and trim gaps"), as a pure function of
 * what it can verify: the log's bounds, the archived LSN read from the store, the replicas
 * that reported recently, and the log start it last saw. It keeps no state of its own, so
 * a restarted coordinator decides exactly as the one before it.
 *
 * Records with LSN <= archived may go: a processor that needs one of them bootstraps from
 * a retained snapshot instead. The trim point is the log's new first LSN, so at most
 * archived + 1.
 */
export type TrimPolicy = 'snapshot' | 'replicas';

export interface ReplicaReport {
  node: string;
  appliedLsn: number;
  /** Milliseconds since the epoch of its last report. */
  seenAt: number;
}

export interface TrimInput {
  policy: TrimPolicy;
  log: LogInfo;
  /** Lowest LSN among the retained snapshots that verified; undefined when none did. */
  archivedLsn: number | undefined;
  replicas: readonly ReplicaReport[];
  /** Reports older than this (ms) are not a live replica's. */
  replicaTtlMs: number;
  now: number;
}

export interface TrimDecision {
  /** Trim before this LSN (the log's new start); equal to log.start when nothing may go. */
  trimBefore: number;
  /** Whether a trim would move the log start. */
  moves: boolean;
  /** Each bound that applied, in words, for dry runs and logs. */
  reasons: string[];
}

export function decideTrim(input: TrimInput): TrimDecision {
  const { log, archivedLsn, policy } = input;
  const reasons: string[] = [];
  if (archivedLsn === undefined) {
    return { trimBefore: log.start, moves: false, reasons: ['no verified snapshot: nothing is archived, so nothing may be trimmed'] };
  }
  let bound = archivedLsn + 1;
  reasons.push(`archived LSN ${archivedLsn} (oldest retained snapshot): records up to it may go, so at most ${bound}`);
  if (bound > log.end) {
    bound = log.end;
    reasons.push(`the log ends at ${log.end}: never past its end`);
  }
  if (policy === 'replicas') {
    const live = input.replicas.filter((r) => input.now - r.seenAt <= input.replicaTtlMs);
    for (const r of live) {
      if (r.appliedLsn + 1 < bound) {
        bound = r.appliedLsn + 1;
        reasons.push(`policy replicas: live replica ${r.node} has applied up to ${r.appliedLsn}, so at most ${bound}`);
      }
    }
    if (live.length < input.replicas.length) reasons.push(`${input.replicas.length - live.length} replica(s) not seen for ${input.replicaTtlMs} ms ignored; they will bootstrap`);
  }
  if (bound <= log.start) {
    reasons.push(`the log already starts at ${log.start}: a trim never moves backwards`);
    return { trimBefore: log.start, moves: false, reasons };
  }
  return { trimBefore: bound, moves: true, reasons };
}

/**
 * The archived LSN of a partition, read from the store, never from reports: the lowest LSN
 * among the retained snapshots of latest.json whose metadata.json exists and agrees. A
 * retained entry that does not verify is skipped, so the archived LSN only ever comes from
 * snapshots a bootstrap could really use; undefined when there are none.
 */
export async function readArchivedLsn(repository: SnapshotRepository, partition: string): Promise<number | undefined> {
  const latest = await repository.latest(partition);
  if (!latest) return undefined;
  let archived: number | undefined;
  for (const entry of latest.pointer.retained) {
    try {
      const meta = await repository.metadata(partition, entry.snapshotId);
      if (meta.lsn !== entry.lsn) continue;
    } catch (err) {
      if (isCairnError(err, 'NOT_FOUND') || isCairnError(err, 'CORRUPT')) continue;
      throw err;
    }
    archived = archived === undefined ? entry.lsn : Math.min(archived, entry.lsn);
  }
  return archived;
}
