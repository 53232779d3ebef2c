import { ulid } from 'ulid';
import type { LogInfo } from '../log/types.js';
import type { Command, CommandOutcome, Report } from '../runtime/coordinator-protocol.js';

/**
 * What the coordinator has heard from processors: soft state, rebuilt from the next round
 * of reports after a restart. Nothing here decides what may be trimmed on its own (the
 * archived LSN always comes from the store); it bounds the `replicas` policy, carries
 * snapshot requests and delegated trims to processors, and feeds the status page.
 *
 * Memory is bounded whatever clients send: a partition keeps at most MAX_REPLICAS replicas
 * (the longest silent goes first) and MAX_REQUESTS snapshot requests.
 */
export interface Replica {
  node: string;
  appliedLsn: number;
  snapshotLsn: number;
  /** ms since the epoch of the last report. */
  seenAt: number;
  /** Log bounds as the processor sees them (single-process logs only). */
  log?: LogInfo;
}

export interface SnapshotRequest {
  id: string;
  minLsn: number;
  requestedAt: number;
  status: 'pending' | 'done' | 'expired';
  /** Each replica's answer, by node. */
  answers: Array<{ node: string; status: CommandOutcome['status']; reason?: string; lsn?: number; at: number }>;
}

export interface DelegatedTrim {
  id: string;
  beforeLsn: number;
  requestedAt: number;
}

const MAX_REPLICAS = 64;
const MAX_REQUESTS = 16;
const MAX_ANSWERS = 16;
/** A snapshot request nobody could serve in this long is given up. */
export const REQUEST_TTL_MS = 10 * 60_000;

class PartitionBook {
  readonly replicas = new Map<string, Replica>();
  readonly requests: SnapshotRequest[] = [];
  trim: DelegatedTrim | undefined;
}

export class ReplicaBook {
  private readonly books = new Map<string, PartitionBook>();

  constructor(private readonly replicaTtlMs: number) {}

  /** Records a report and returns the commands for its reply. */
  report(partition: string, report: Report, now: number): { commands: Command[]; evicted: string[] } {
    const book = this.book(partition);
    book.replicas.delete(report.node); // re-insert: Map order is then least recently seen first
    book.replicas.set(report.node, {
      node: report.node,
      appliedLsn: report.appliedLsn,
      snapshotLsn: report.snapshotLsn,
      seenAt: now,
      ...(report.log ? { log: report.log } : {}),
    });
    const evicted: string[] = [];
    for (const node of book.replicas.keys()) {
      if (book.replicas.size <= MAX_REPLICAS) break;
      book.replicas.delete(node);
      evicted.push(node);
    }
    for (const outcome of report.outcomes ?? []) this.recordOutcome(book, report.node, outcome, now);
    if (book.trim && report.log && report.log.start >= book.trim.beforeLsn) book.trim = undefined;
    this.expire(book, now);

    const commands: Command[] = [];
    for (const r of book.requests) {
      if (r.status !== 'pending') continue;
      // A replica that declined for being behind is asked again once it has caught up.
      const answer = r.answers.find((a) => a.node === report.node);
      if (!answer || (answer.status === 'declined' && report.appliedLsn >= r.minLsn)) commands.push({ id: r.id, type: 'snapshot', minLsn: r.minLsn });
    }
    // Only a processor that holds a single-process log (it reports its bounds) can trim it.
    if (book.trim && report.log && report.log.start < book.trim.beforeLsn) commands.push({ id: book.trim.id, type: 'trim', beforeLsn: book.trim.beforeLsn });
    return { commands, evicted };
  }

  requestSnapshot(partition: string, minLsn: number, now: number): SnapshotRequest {
    const book = this.book(partition);
    this.expire(book, now);
    const same = book.requests.find((r) => r.status === 'pending' && r.minLsn === minLsn);
    if (same) return same;
    const request: SnapshotRequest = { id: ulid(now), minLsn, requestedAt: now, status: 'pending', answers: [] };
    book.requests.push(request);
    if (book.requests.length > MAX_REQUESTS) book.requests.splice(0, book.requests.length - MAX_REQUESTS);
    return request;
  }

  /** A trim the log's owning processor performs on the coordinator's behalf. */
  delegateTrim(partition: string, beforeLsn: number, now: number): DelegatedTrim {
    const book = this.book(partition);
    if (book.trim && book.trim.beforeLsn >= beforeLsn) return book.trim;
    book.trim = { id: ulid(now), beforeLsn, requestedAt: now };
    return book.trim;
  }

  replicas(partition: string): Replica[] {
    return [...(this.books.get(partition)?.replicas.values() ?? [])];
  }

  isLive(replica: Replica, now: number): boolean {
    return now - replica.seenAt <= this.replicaTtlMs;
  }

  /** The freshest log bounds a live processor reported, for a log the coordinator cannot open. */
  reportedLog(partition: string, now: number): LogInfo | undefined {
    const live = this.replicas(partition).filter((r) => r.log && this.isLive(r, now));
    return live.sort((a, b) => b.seenAt - a.seenAt)[0]?.log;
  }

  requests(partition: string, now: number): SnapshotRequest[] {
    const book = this.books.get(partition);
    if (!book) return [];
    this.expire(book, now);
    return [...book.requests];
  }

  pendingTrim(partition: string): DelegatedTrim | undefined {
    return this.books.get(partition)?.trim;
  }

  partitions(): string[] {
    return [...this.books.keys()];
  }

  private recordOutcome(book: PartitionBook, node: string, outcome: CommandOutcome, now: number): void {
    if (book.trim?.id === outcome.id && outcome.status === 'done') book.trim = undefined;
    const request = book.requests.find((r) => r.id === outcome.id);
    if (!request) return;
    request.answers = request.answers.filter((a) => a.node !== node);
    request.answers.push({ node, status: outcome.status, at: now, ...(outcome.reason ? { reason: outcome.reason } : {}), ...(outcome.lsn !== undefined ? { lsn: outcome.lsn } : {}) });
    if (request.answers.length > MAX_ANSWERS) request.answers.shift();
    if (outcome.status === 'done') request.status = 'done';
  }

  private expire(book: PartitionBook, now: number): void {
    for (const r of book.requests) if (r.status === 'pending' && now - r.requestedAt > REQUEST_TTL_MS) r.status = 'expired';
  }

  private book(partition: string): PartitionBook {
    let book = this.books.get(partition);
    if (!book) {
      book = new PartitionBook();
      this.books.set(partition, book);
    }
    return book;
  }
}
