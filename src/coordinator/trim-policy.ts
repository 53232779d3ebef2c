import { isCairnError, toCairnError } from '../core/errors.js';
import type { LogInfo } from '../log/types.js';
import { coversLogStart, resumeLsn } from '../snapshots/coverage.js';
import { Placement } from '../snapshots/placement.js';
import type { SnapshotRepository } from '../snapshots/repository.js';

/**
 * The coordinator's trim decision (README, "The coordinator"), as a pure function of
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
  /** When the snapshot that sets the archived LSN was created (ms since the epoch). */
  archivedAt?: number;
  /** Trim only behind a snapshot at least this old (ms): lagging replicas get time to catch up. */
  delayMs?: number;
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
  if (input.delayMs && input.archivedAt !== undefined && input.now - input.archivedAt < input.delayMs) {
    const age = Math.max(0, input.now - input.archivedAt);
    return { trimBefore: log.start, moves: false, reasons: [`archived LSN ${archivedLsn} comes from a snapshot ${age} ms old; the trim delay is ${input.delayMs} ms`] };
  }
  // The highest log start the oldest retained snapshot still covers (snapshots/coverage.ts).
  let bound = resumeLsn(archivedLsn);
  reasons.push(`archived LSN ${archivedLsn} (oldest retained snapshot): records up to it may go, so at most ${bound}`);
  if (bound > log.end) {
    bound = log.end;
    reasons.push(`the log ends at ${log.end}: never past its end`);
  }
  if (policy === 'replicas') {
    const live = input.replicas.filter((r) => input.now - r.seenAt <= input.replicaTtlMs);
    for (const r of live) {
      if (!coversLogStart(r.appliedLsn, bound)) {
        bound = resumeLsn(r.appliedLsn);
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
export async function readArchivedLsn(source: SnapshotRepository | Placement, partition: string): Promise<number | undefined> {
  return (await readArchived(source, partition)).archived?.lsn;
}

export interface ArchivedSnapshot {
  snapshotId: string;
  lsn: number;
  /** ms since the epoch, from its metadata.json. */
  createdAt: number;
}

export interface ArchivedRead {
  archived?: ArchivedSnapshot;
  newest?: ArchivedSnapshot;
  /** With several stores in the partition's class: each store's archived LSN (null: none, or no answer). */
  stores?: Array<{ store: string; archivedLsn: number | null; error?: string }>;
  /** With several stores: which one sets the bound, or why there is none, in words. */
  note?: string;
}

/**
 * The archived LSN over every store of the partition's class: the lowest, so the log is
 * trimmed only where every region can bootstrap. A store without a verified snapshot, or
 * one that does not answer, holds the trim back entirely (no archived LSN).
 */
export async function readArchived(source: SnapshotRepository | Placement, partition: string): Promise<ArchivedRead> {
  if (!(source instanceof Placement)) return readArchivedIn(source, partition);
  const { className, stores } = await source.placementOf(partition);
  if (stores.length === 1) return readArchivedIn(stores[0]!.repository, partition);
  const reads = await Promise.allSettled(stores.map((s) => readArchivedIn(s.repository, partition)));
  const perStore = reads.map((r, i) =>
    r.status === 'fulfilled' ? { store: stores[i]!.name, archivedLsn: r.value.archived?.lsn ?? null } : { store: stores[i]!.name, archivedLsn: null, error: toCairnError(r.reason).message },
  );
  const answers = reads.flatMap((r, i) => (r.status === 'fulfilled' ? [{ store: stores[i]!.name, ...r.value }] : []));
  const newest = answers.flatMap((a) => (a.newest ? [a.newest] : [])).sort((a, b) => b.lsn - a.lsn)[0];
  const found = { stores: perStore, ...(newest ? { newest } : {}) };
  const missing = perStore.find((s) => s.archivedLsn === null);
  if (missing) {
    const why = missing.error ? `did not answer (${missing.error})` : 'holds no verified snapshot';
    return { ...found, note: `store ${missing.store} of class ${className} ${why}: the log is trimmed only where every store of the class can bootstrap` };
  }
  const lowest = answers.sort((a, b) => a.archived!.lsn - b.archived!.lsn)[0]!;
  const each = perStore.map((s) => `${s.store} ${s.archivedLsn}`).join(', ');
  return { ...found, archived: lowest.archived!, note: `archived LSN over the stores of class ${className} (${each}): store ${lowest.store} sets the bound` };
}

/** The snapshot that sets the archived LSN in one store, and its newest retained one (both verified). */
async function readArchivedIn(repository: SnapshotRepository, partition: string): Promise<ArchivedRead> {
  const latest = await repository.latest(partition);
  if (!latest) return {};
  const verified: ArchivedSnapshot[] = [];
  for (const entry of latest.pointer.retained) {
    try {
      const meta = await repository.metadata(partition, entry.snapshotId);
      if (meta.lsn !== entry.lsn) continue;
      verified.push({ snapshotId: meta.snapshotId, lsn: meta.lsn, createdAt: Date.parse(meta.createdAt) });
    } catch (err) {
      if (isCairnError(err, 'NOT_FOUND') || isCairnError(err, 'CORRUPT')) continue;
      throw err;
    }
  }
  if (verified.length === 0) return {};
  const byLsn = verified.sort((a, b) => a.lsn - b.lsn);
  return { archived: byLsn[0]!, newest: byLsn[byLsn.length - 1]! };
}
