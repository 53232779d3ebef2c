import { setTimeout as sleep } from 'node:timers/promises';
import { toCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Log } from '../log/types.js';
import { reportReplySchema, type Command, type CommandOutcome, type Report } from './coordinator-protocol.js';
import type { SnapshotRequestOutcome } from './snapshot-schedule.js';

export interface CoordinatorLink {
  /** Base URL, e.g. http://127.0.0.1:7070 */
  url: string;
  /** Sent as `Authorization: Bearer …` when set. */
  token?: string;
  /** Time between reports. */
  intervalMs: number;
}

/** What the reporter needs from the processor it reports for. */
export interface ReportedProcessor {
  readonly partition: string;
  readonly appliedLsn: number;
  readonly snapshotLsn: number;
  requestSnapshot(minLsn: number): Promise<SnapshotRequestOutcome>;
}

export interface ReporterOptions extends CoordinatorLink {
  node: string;
  processor: ReportedProcessor;
  log: Log;
  logger: Logger;
  /** Counts reports by outcome (ok, failed). */
  onReport?: (outcome: 'ok' | 'failed') => void;
}

const REQUEST_TIMEOUT_MS = 5_000;
/** Outage warnings at most this often: a coordinator down for hours should not flood logs. */
const WARN_EVERY_MS = 60_000;
/** Command ids remembered, so a command the coordinator repeats before our outcome reached it runs once. */
const SEEN_IDS = 256;

/**
 * Reports while a run goes on, until `signal` aborts or the returned function is called;
 * that resolves once the report in flight ended, so none outlives the run.
 */
export function reportWhileRunning(o: ReporterOptions, signal: AbortSignal | undefined): () => Promise<void> {
  const reporter = new CoordinatorReporter(o);
  const stop = new AbortController();
  reporter.start(signal ? AbortSignal.any([signal, stop.signal]) : stop.signal);
  return async () => {
    stop.abort();
    await reporter.stopped();
  };
}

/**
 * Reports a processor's progress to the coordinator and carries out the commands of each
 * reply. The coordinator is advisory: while it is unreachable the processor applies,
 * snapshots and bootstraps exactly as without one, so this loop only ever logs failures.
 */
export class CoordinatorReporter {
  private readonly outcomes: CommandOutcome[] = [];
  private readonly seen: string[] = [];
  private lastWarnAt = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly o: ReporterOptions) {}

  start(signal: AbortSignal): void {
    this.loop ??= this.run(signal);
  }

  /** Resolves once the loop has seen its signal abort and the in-flight report ended. */
  async stopped(): Promise<void> {
    await this.loop;
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.reportOnce(signal);
      await sleep(this.o.intervalMs, undefined, { signal }).catch(() => undefined);
    }
  }

  /** One report and its reply's commands; never throws. */
  async reportOnce(signal?: AbortSignal): Promise<Command[]> {
    const { processor, log, logger } = this.o;
    const partition = processor.partition;
    try {
      const outcomes = this.outcomes.splice(0);
      const body: Report = {
        node: this.o.node,
        appliedLsn: processor.appliedLsn,
        snapshotLsn: processor.snapshotLsn,
        ...(log.capabilities.multiProcess ? {} : { log: await log.info(partition) }),
        ...(outcomes.length > 0 ? { outcomes } : {}),
      };
      const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
      const response = await fetch(`${this.o.url.replace(/\/+$/, '')}/v1/partitions/${encodeURIComponent(partition)}/reports`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}) },
        body: JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      }).catch((err: unknown) => {
        this.outcomes.unshift(...outcomes);
        throw err;
      });
      const text = await response.text();
      if (!response.ok) {
        // A rejected report is not retried with the same outcomes: the coordinator said no.
        throw new Error(`coordinator answered ${response.status}: ${text.slice(0, 200)}`);
      }
      const reply = reportReplySchema.parse(JSON.parse(text));
      this.o.onReport?.('ok');
      for (const command of reply.commands) this.execute(command);
      return reply.commands;
    } catch (err) {
      if (signal?.aborted) return [];
      this.o.onReport?.('failed');
      const now = Date.now();
      if (now - this.lastWarnAt >= WARN_EVERY_MS) {
        this.lastWarnAt = now;
        logger.warn({ partition, url: this.o.url, err: toCairnError(err).message }, 'cannot report to the coordinator; processing goes on');
      }
      return [];
    }
  }

  private execute(command: Command): void {
    if (this.seen.includes(command.id)) return;
    this.seen.push(command.id);
    if (this.seen.length > SEEN_IDS) this.seen.shift();
    const { processor, log, logger } = this.o;
    const partition = processor.partition;
    const done = (outcome: Omit<CommandOutcome, 'id'>) => {
      // Declined is not final: the coordinator asks again once this processor caught up.
      if (outcome.status === 'declined') this.seen.splice(this.seen.indexOf(command.id), 1);
      this.outcomes.push({ id: command.id, ...outcome });
      logger.info({ partition, command, outcome }, 'coordinator command finished');
    };
    const failed = (err: unknown) => done({ status: 'failed', reason: toCairnError(err).message.slice(0, 500) });
    logger.info({ partition, command }, 'coordinator command received');
    switch (command.type) {
      case 'snapshot':
        processor.requestSnapshot(command.minLsn).then((o) => done({ status: o.status, ...(o.reason ? { reason: o.reason.slice(0, 500) } : {}), ...(o.lsn !== undefined ? { lsn: o.lsn } : {}) }), failed);
        return;
      case 'trim':
        log.trim(partition, command.beforeLsn).then((info) => done({ status: 'done', reason: `log now starts at ${info.start}` }), failed);
        return;
    }
  }
}
