import { CairnError, isCairnError, toCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Log, LogInfo } from '../log/types.js';
import type { Report, ReportReply } from '../runtime/coordinator-protocol.js';
import type { Placement } from '../snapshots/placement.js';
import type { SnapshotRepository } from '../snapshots/repository.js';
import { CoordinatorLog } from './log-access.js';
import type { CoordinatorMetrics } from './metrics.js';
import { ReplicaBook, type DelegatedTrim, type SnapshotRequest } from './replicas.js';
import { decideTrim, readArchived, type ArchivedSnapshot, type TrimPolicy } from './trim-policy.js';

export interface CoordinatorOptions {
  /** Builds the log client; called once for Kafka, per operation for the embedded log. */
  createLog: () => Log;
  /** The home store's snapshots: which partitions exist. */
  repository: SnapshotRepository;
  /** The stores of each partition's class, whose lowest archived LSN bounds a trim; default: `repository` alone. */
  placement?: Placement;
  policy: TrimPolicy;
  /** Automatic trims this often (ms); 0 = only on request. */
  trimIntervalMs: number;
  trimDelayMs: number;
  replicaTtlMs: number;
  logger: Logger;
  metrics: CoordinatorMetrics;
  now?: () => number;
}

export interface LogView extends LogInfo {
  /** `log`: read from the log; `processor`: reported by the processor holding a single-process log. */
  via: 'log' | 'processor';
}

export interface PartitionStatus {
  partition: string;
  log: LogView | null;
  logError?: { code: string; message: string };
  /** Lowest LSN of the retained, verified snapshots, read from the store; null when none. */
  archivedLsn: number | null;
  archivedSnapshot: ArchivedSnapshot | null;
  /** With several stores in the partition's class: each one's archived LSN. */
  archivedByStore?: Array<{ store: string; archivedLsn: number | null; error?: string }>;
  latestSnapshot: ArchivedSnapshot | null;
  /** The log's first retained LSN. */
  trimPoint: number | null;
  /** Where a trim now would move it (equals trimPoint when nothing may go), and why. */
  safeTrimPoint: number | null;
  reasons: string[];
  replicas: Array<{ node: string; appliedLsn: number; snapshotLsn: number; lastSeen: string; live: boolean }>;
  lastTrim: TrimRecord | null;
  pendingTrim: DelegatedTrim | null;
  snapshotRequests: SnapshotRequest[];
}

export interface TrimRecord {
  at: string;
  before: number;
  mode: 'automatic' | 'manual';
  /** Performed by the processor that holds a single-process log. */
  delegated: boolean;
  logStart: number;
}

export interface TrimOutcome {
  partition: string;
  dryRun: boolean;
  log: LogView;
  archivedLsn: number | null;
  archivedByStore?: Array<{ store: string; archivedLsn: number | null; error?: string }>;
  trimBefore: number;
  moves: boolean;
  trimmed: boolean;
  delegated: boolean;
  after?: LogInfo;
  reasons: string[];
}

/** How often the partition listings may be re-read when a name is missing from them. */
const PARTITION_REFRESH_MS = 1_000;

/** What the log and the store hold, read together and at most once per PARTITION_REFRESH_MS. */
interface Known {
  inLog: Set<string>;
  /** In the log or the store. */
  all: Set<string>;
  /** Why the log could not be listed, if it could not. */
  logError?: CairnError;
  readAt: number;
}

/**
 * The coordinator (README, "The coordinator"). Everything it decides is derived from
 * the store (archived LSN), the log (its bounds) and recent reports, so it restarts at any
 * moment without losing anything that matters: a forgotten snapshot request is re-sent by
 * whoever needs it, a forgotten trim is recomputed by the next loop.
 */
export class Coordinator {
  readonly book: ReplicaBook;
  private readonly log: CoordinatorLog;
  private readonly now: () => number;
  private readonly lastTrims = new Map<string, TrimRecord>();
  private readonly trimChains = new Map<string, Promise<unknown>>();
  private known: Known = { inLog: new Set(), all: new Set(), readAt: -Infinity };
  private refreshing: Promise<Known> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private looping: Promise<void> | undefined;

  constructor(private readonly o: CoordinatorOptions) {
    this.book = new ReplicaBook(o.replicaTtlMs);
    this.log = new CoordinatorLog(o.createLog);
    this.now = o.now ?? Date.now;
  }

  get policy(): TrimPolicy {
    return this.o.policy;
  }

  /** Partitions the log or the store holds, or that reported; sorted. */
  async partitions(): Promise<string[]> {
    const known = await this.listings();
    return [...new Set([...known.all, ...this.book.partitions()])].sort();
  }

  /** Whether `partition` is one the coordinator can speak about (else the API answers 404). */
  async isKnown(partition: string): Promise<boolean> {
    return (await this.listings(partition)).all.has(partition);
  }

  /** The status of every partition, for the list endpoint and the status page. */
  async statuses(): Promise<PartitionStatus[]> {
    return Promise.all((await this.partitions()).map((p) => this.status(p)));
  }

  report(partition: string, report: Report): ReportReply {
    const { commands, evicted } = this.book.report(partition, report, this.now());
    this.o.metrics.appliedLsn.set({ partition, node: report.node }, report.appliedLsn);
    for (const node of evicted) this.o.metrics.appliedLsn.remove({ partition, node });
    return { commands };
  }

  requestSnapshot(partition: string, minLsn: number): SnapshotRequest {
    this.o.metrics.snapshotRequests.inc({ partition });
    const request = this.book.requestSnapshot(partition, minLsn, this.now());
    this.o.logger.info({ partition, minLsn, id: request.id }, 'snapshot requested');
    return request;
  }

  async status(partition: string): Promise<PartitionStatus> {
    const now = this.now();
    const [logResult, stored] = await Promise.all([this.logView(partition).then((v) => ({ v }), (err: unknown) => ({ err: toCairnError(err) })), readArchived(this.o.placement ?? this.o.repository, partition)]);
    const view = 'v' in logResult ? logResult.v : null;
    const decision = view ? this.decide(partition, view, stored.archived, false) : undefined;
    this.updateGauges(partition, view, stored.archived?.lsn, decision?.trimBefore);
    return {
      partition,
      log: view,
      ...('err' in logResult ? { logError: { code: logResult.err.code, message: logResult.err.message } } : {}),
      archivedLsn: stored.archived?.lsn ?? null,
      archivedSnapshot: stored.archived ?? null,
      ...(stored.stores ? { archivedByStore: stored.stores } : {}),
      latestSnapshot: stored.newest ?? null,
      trimPoint: view?.start ?? null,
      safeTrimPoint: decision?.trimBefore ?? null,
      reasons: [...(stored.note ? [stored.note] : []), ...(decision?.reasons ?? [])],
      replicas: this.book.replicas(partition).map((r) => ({
        node: r.node,
        appliedLsn: r.appliedLsn,
        snapshotLsn: r.snapshotLsn,
        lastSeen: new Date(r.seenAt).toISOString(),
        live: this.book.isLive(r, now),
      })),
      lastTrim: this.lastTrims.get(partition) ?? null,
      pendingTrim: this.book.pendingTrim(partition) ?? null,
      snapshotRequests: this.book.requests(partition, now),
    };
  }

  /** Computes the safe trim point and, unless `dryRun`, trims there. One trim per partition at a time. */
  trim(partition: string, options: { dryRun: boolean; automatic?: boolean }): Promise<TrimOutcome> {
    const previous = this.trimChains.get(partition) ?? Promise.resolve();
    const run = previous.then(() => this.trimNow(partition, options.dryRun, options.automatic ?? false));
    const tail = run.catch(() => undefined);
    this.trimChains.set(partition, tail);
    void tail.then(() => this.trimChains.get(partition) === tail && this.trimChains.delete(partition));
    return run;
  }

  /** Starts the automatic trim loop (when trimIntervalMs > 0). */
  start(): void {
    if (this.o.trimIntervalMs <= 0 || this.timer) return;
    const tick = () => {
      this.looping = this.trimAll().then(() => undefined).finally(() => {
        this.looping = undefined;
        if (this.timer) this.timer = setTimeout(tick, this.o.trimIntervalMs);
      });
    };
    this.timer = setTimeout(tick, this.o.trimIntervalMs);
  }

  async close(): Promise<void> {
    const timer = this.timer;
    this.timer = undefined;
    clearTimeout(timer);
    await this.looping;
    await Promise.all([...this.trimChains.values()]);
    await this.log.close();
  }

  /** One pass of the automatic loop; a failing partition is logged and retried next pass. */
  async trimAll(): Promise<TrimOutcome[]> {
    const known = await this.refreshListings();
    if (known.logError) {
      this.o.logger.warn({ err: known.logError.message }, 'cannot list the log partitions; trim pass skipped');
      return [];
    }
    const outcomes: TrimOutcome[] = [];
    for (const partition of [...known.inLog].sort()) {
      try {
        outcomes.push(await this.trim(partition, { dryRun: false, automatic: true }));
      } catch (err) {
        this.o.metrics.trimErrors.inc({ partition });
        this.o.logger.warn({ partition, err: toCairnError(err).toJSON() }, 'automatic trim failed; next pass retries');
      }
    }
    return outcomes;
  }

  private async trimNow(partition: string, dryRun: boolean, automatic: boolean): Promise<TrimOutcome> {
    const [view, stored] = await Promise.all([this.logView(partition), readArchived(this.o.placement ?? this.o.repository, partition)]);
    const decision = this.decide(partition, view, stored.archived, automatic);
    // The lag gauge shows what is archived but still in the log, whatever the trim delay.
    const safe = automatic ? this.decide(partition, view, stored.archived, false).trimBefore : decision.trimBefore;
    this.updateGauges(partition, view, stored.archived?.lsn, safe);
    const outcome: TrimOutcome = {
      partition,
      dryRun,
      log: view,
      archivedLsn: stored.archived?.lsn ?? null,
      ...(stored.stores ? { archivedByStore: stored.stores } : {}),
      ...decision,
      reasons: [...(stored.note ? [stored.note] : []), ...decision.reasons],
      trimmed: false,
      delegated: false,
    };
    if (dryRun || !decision.moves) return outcome;
    const mode = automatic ? 'automatic' : 'manual';
    let after: LogInfo | undefined;
    if (view.via === 'log') {
      after = await this.log.use((l) => l.trim(partition, decision.trimBefore)).catch((err: unknown) => {
        if (isCairnError(err, 'LOG_BUSY')) return undefined; // a processor opened it meanwhile: delegate
        throw err;
      });
    }
    if (after) {
      outcome.trimmed = true;
      outcome.after = after;
      this.updateGauges(partition, after, stored.archived?.lsn, Math.max(safe, after.start));
    } else {
      const delegated = this.book.delegateTrim(partition, decision.trimBefore, this.now());
      outcome.delegated = true;
      outcome.reasons.push(`the log is held by its processor: trim ${delegated.id} goes out with its next report reply`);
    }
    this.o.metrics.trims.inc({ partition, mode: outcome.delegated ? 'delegated' : mode });
    const record: TrimRecord = { at: new Date(this.now()).toISOString(), before: decision.trimBefore, mode, delegated: outcome.delegated, logStart: after?.start ?? view.start };
    this.lastTrims.set(partition, record);
    this.o.logger.info({ partition, ...record, reasons: decision.reasons }, outcome.delegated ? 'trim delegated to the processor' : 'log trimmed');
    return outcome;
  }

  private decide(partition: string, log: LogInfo, archived: ArchivedSnapshot | undefined, automatic: boolean) {
    const now = this.now();
    const replicas = this.book.replicas(partition).map((r) => ({ node: r.node, appliedLsn: r.appliedLsn, seenAt: r.seenAt }));
    return decideTrim({
      policy: this.o.policy,
      log,
      archivedLsn: archived?.lsn,
      replicas,
      replicaTtlMs: this.o.replicaTtlMs,
      now,
      ...(automatic && archived ? { archivedAt: archived.createdAt, delayMs: this.o.trimDelayMs } : {}),
    });
  }

  /**
   * The log's bounds. A single-process log held by its processor answers LOG_BUSY; the
   * bounds that processor reported stand in (they only bound how far a trim goes, and the
   * log clamps a trim to its real end anyway).
   */
  private async logView(partition: string): Promise<LogView> {
    const known = await this.listings(partition);
    // Only a partition the log lists is opened: the embedded log would create any other.
    if (!known.inLog.has(partition)) {
      if (known.logError) throw known.logError;
      const reported = this.book.reportedLog(partition, this.now());
      if (reported) return { ...reported, via: 'processor' };
      throw new CairnError('NOT_FOUND', `the log holds no partition ${partition}`, { details: { partition } });
    }
    try {
      return { ...(await this.log.use((l) => l.info(partition))), via: 'log' };
    } catch (err) {
      const reported = isCairnError(err, 'LOG_BUSY') ? this.book.reportedLog(partition, this.now()) : undefined;
      if (reported) return { ...reported, via: 'processor' };
      throw err;
    }
  }

  private updateGauges(partition: string, log: LogInfo | null, archived: number | undefined, safeTrimPoint: number | undefined): void {
    const m = this.o.metrics;
    m.archivedLsn.set({ partition }, archived ?? -1);
    if (!log) return;
    m.logStart.set({ partition }, log.start);
    m.logEnd.set({ partition }, log.end);
    m.trimLag.set({ partition }, Math.max(0, (safeTrimPoint ?? log.start) - log.start));
  }

  /** The listings, re-read when stale, or when `wanted` is missing and they may be re-read. */
  private async listings(wanted?: string): Promise<Known> {
    const stale = this.now() - this.known.readAt >= PARTITION_REFRESH_MS;
    const missing = wanted === undefined || !this.known.all.has(wanted) || !this.known.inLog.has(wanted);
    // A caller that needs a listing waits for the one being read rather than answering from
    // an older (at start-up: empty) one: the first reports of a partition must not get 404.
    if ((stale && missing) || (this.refreshing && wanted !== undefined && !this.known.all.has(wanted))) return this.refreshListings();
    return this.known;
  }

  /** One listing read at a time; concurrent callers share it. */
  private refreshListings(): Promise<Known> {
    this.refreshing ??= (async () => {
      const [fromLog, fromStore] = await Promise.all([
        this.log.use((l) => l.partitions()).then((names) => ({ names }), (err: unknown) => ({ names: [] as string[], err: toCairnError(err) })),
        this.o.repository.partitions().catch(() => [] as string[]),
      ]);
      this.known = {
        inLog: new Set(fromLog.names),
        all: new Set([...fromLog.names, ...fromStore]),
        ...('err' in fromLog ? { logError: fromLog.err } : {}),
        readAt: this.now(),
      };
      return this.known;
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }
}
