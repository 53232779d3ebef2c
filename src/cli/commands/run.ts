import type { Command } from 'commander';
import { CairnError, toCairnError } from '../../core/errors.js';
import { parseLsn, validatePartition } from '../../core/names.js';
import { serveWorker } from '../../runtime/worker-server.js';
import { loadProcessor } from '../../runtime/processor-module.js';
import type { PartitionProcessor, RunSummary } from '../../runtime/partition-processor.js';
import { action, parsePort, reportError, type CliContext } from '../context.js';

interface RunFlags {
  partition: string[];
  group?: string;
  processor: string;
  untilLsn?: string;
  snapshotEvery?: string;
  checkpointOnExit?: boolean;
  stopAtEnd?: boolean;
  metricsPort?: string;
}

export function describeRun(s: RunSummary): string {
  const published = s.snapshots.filter((x) => x.status === 'published');
  return [
    `${s.partition}: started from ${s.start.source} state at LSN ${s.start.lsn}${s.start.store ? ` (store ${s.start.store})` : ''}${s.start.reason ? ` (${s.start.reason})` : ''}`,
    `applied ${s.recordsApplied} records${s.recordsSkipped ? `, skipped ${s.recordsSkipped}` : ''} in ${(s.durationMs / 1000).toFixed(1)} s (${s.recordsPerSec} records/s); now at LSN ${s.appliedLsn}; stopped by ${s.stoppedBy}`,
    `snapshots: ${published.length} published${published.length ? ` (last at LSN ${published[published.length - 1]!.metadata.lsn})` : ''}, ${s.snapshots.length - published.length} superseded`,
    ...missedStores(s),
  ].join('\n');
}

/** Stores of a class a snapshot of this run did not reach: the next checkpoint or `cairn replicate` fills them in. */
function missedStores(s: RunSummary): string[] {
  const missed = new Map<string, string>();
  for (const snap of s.snapshots) for (const o of snap.stores ?? []) if (o.status === 'failed') missed.set(o.store, o.error.code);
  if (missed.size === 0) return [];
  return [`not written to store(s) ${[...missed].map(([store, code]) => `${store} (${code})`).join(', ')}: the next checkpoint or cairn replicate catches them up`];
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a partition processor; bootstraps when local state is missing or behind a trim gap')
    .option('--partition <p>', 'partition name; repeat to run several partitions in this process', (p: string, all: string[]) => [...all, p], [] as string[])
    .option('--group <name>', "join Kafka consumer group NAME: the group protocol assigns this worker its share of the topic's partitions (instead of --partition)")
    .requiredOption('--processor <module>', 'processor module (.ts or .js) whose default export is { name, apply }')
    .option('--until-lsn <n>', 'stop once this LSN is applied')
    .option('--stop-at-end', 'stop once caught up with the end of the log')
    .option('--snapshot-every <n>', 'snapshot after this many records (overrides snapshots.everyRecords; 0 = never)')
    .option('--checkpoint-on-exit', 'take a final snapshot before exiting')
    .option('--metrics-port <port>', 'serve Prometheus metrics on http://127.0.0.1:<port>/metrics (0 = any free port)')
    .action(
      action(async (ctx, flags: RunFlags) => {
        if (flags.group !== undefined) return runGroup(ctx, flags);
        if (flags.partition.length === 0) throw new CairnError('BAD_INPUT', 'missing required option --partition (or --group)');
        const partitions = flags.partition.map((p) => validatePartition(p));
        const twice = partitions.find((p, i) => partitions.indexOf(p) !== i);
        if (twice) throw new CairnError('BAD_INPUT', `--partition ${twice} given twice`);
        const untilLsn = flags.untilLsn === undefined ? undefined : parseLsn(flags.untilLsn, '--until-lsn');
        const everyRecords = flags.snapshotEvery === undefined ? undefined : parseLsn(flags.snapshotEvery, '--snapshot-every');
        const processor = await loadProcessor(flags.processor);
        const progress = ctx.progress('bootstrap');
        // One processor per partition, each with its own state, snapshots and read loop: a
        // slow or failing partition holds back no other.
        const runners = partitions.map((partition) =>
          ctx.cairn.processor(partition, processor, { ...(everyRecords !== undefined ? { everyRecords } : {}), onBootstrapProgress: progress }),
        );
        const served = new Map(runners.map((r) => [r.partition, r]));
        const { controller, finish } = await startWorker(ctx, flags, 'stopping after the current batch', () => served);
        try {
          const outcomes = await Promise.allSettled(
            runners.map(async (runner) => {
              try {
                return await runner.run({
                  signal: controller.signal,
                  ...(untilLsn !== undefined ? { untilLsn } : {}),
                  ...(flags.stopAtEnd ? { stopAtEnd: true } : {}),
                  ...(flags.checkpointOnExit ? { checkpointOnExit: true } : {}),
                });
              } catch (err) {
                logStopped(ctx, runner, err, controller.signal);
                throw err;
              } finally {
                await runner.close();
              }
            }),
          );
          return report(ctx, partitions, outcomes, controller.signal);
        } finally {
          progress.stop();
          await finish();
        }
      }),
    );
}

/**
 * The one structured line a failed partition gets (the processor itself throws, it does not
 * log): the error with its stack and its causes' (an exception in the processor's apply is
 * the cause of PROCESSOR_FAILED), and the LSN it failed at. The CLI's final one-line error
 * (`cairn: error: ... [CODE]`, exit 1) follows as for every command; nothing else repeats it.
 */
function logStopped(ctx: CliContext, runner: PartitionProcessor, err: unknown, signal: AbortSignal): void {
  const e = toCairnError(err);
  if (signal.aborted && e.code === 'ABORTED') {
    ctx.logger.info({ partition: runner.partition }, 'partition stopped while waiting for its log');
    return;
  }
  const lsn = typeof e.details?.lsn === 'number' ? e.details.lsn : undefined;
  ctx.logger.error({ partition: runner.partition, ...(lsn !== undefined ? { lsn } : {}), appliedLsn: runner.appliedLsn, err: e }, 'partition stopped');
}

type Outcome = PromiseSettledResult<RunSummary>;

/** A signal that arrives while a partition still waits for its log is a clean stop too. */
function stoppedCleanly(o: Outcome, signal: AbortSignal): boolean {
  return o.status === 'rejected' && signal.aborted && toCairnError(o.reason).code === 'ABORTED';
}

/**
 * One partition keeps the single-partition output (a summary, or the error contract); with
 * several, one document lists each partition's summary or error, and the exit code is the
 * worst of them.
 */
function report(ctx: CliContext, partitions: string[], outcomes: Outcome[], signal: AbortSignal): number {
  const [only] = outcomes;
  if (outcomes.length === 1 && only!.status === 'rejected' && !stoppedCleanly(only!, signal)) throw only!.reason;
  if (outcomes.length === 1 && only!.status === 'fulfilled') {
    ctx.output(only!.value, () => describeRun(only!.value));
    return 0;
  }
  let exit = 0;
  const results = outcomes.map((o, i) => {
    const partition = partitions[i]!;
    if (o.status === 'fulfilled') return o.value;
    if (stoppedCleanly(o, signal)) return { partition, stoppedBy: 'signal' as const, opened: false };
    const e = toCairnError(o.reason);
    exit = Math.max(exit, e.exitCode);
    if (!ctx.json) reportError(e, false);
    return { partition, error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } };
  });
  ctx.output({ partitions: results }, () =>
    results.map((r) => ('appliedLsn' in r ? describeRun(r) : 'error' in r && r.error ? `${r.partition}: failed: ${r.error.message} [${r.error.code}]` : `${r.partition}: stopped before its state opened`)).join('\n'),
  );
  return exit;
}

/**
 * `cairn run --group NAME`: a long-running worker of a group (runtime/fleet.ts), until
 * SIGTERM/SIGINT, which hands every partition back (checkpointed, fleet.checkpointOnRevoke)
 * before leaving the group. Exit 1 when a partition fails, after handing the rest back.
 */
async function runGroup(ctx: CliContext, flags: RunFlags): Promise<number> {
  const misplaced = (['partition', 'untilLsn', 'stopAtEnd'] as const).find((f) => (f === 'partition' ? flags.partition.length > 0 : flags[f] !== undefined));
  if (misplaced) throw new CairnError('BAD_INPUT', `--group cannot be combined with --${misplaced.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: a group worker runs what the group assigns, until stopped`);
  const everyRecords = flags.snapshotEvery === undefined ? undefined : parseLsn(flags.snapshotEvery, '--snapshot-every');
  const { capabilities } = ctx.cairn.log;
  if (!capabilities.groups) throw new CairnError('BAD_INPUT', `--group needs a log with consumer groups (Kafka); the ${capabilities.name} log has none: name the partitions with --partition`);
  const fleet = ctx.cairn.fleet(flags.group!, await loadProcessor(flags.processor), everyRecords !== undefined ? { everyRecords } : {});
  const { controller, finish } = await startWorker(ctx, flags, 'handing partitions back and leaving the group', () => fleet.partitions());
  try {
    const summary = await fleet.run(controller.signal);
    ctx.output(summary, () => summary.partitions.map((p) => `${p.partition}: ${p.ended}${p.summary ? ` at LSN ${p.summary.appliedLsn} (${p.summary.recordsApplied} applied)` : ''}`).join('\n') || 'no partitions were assigned');
    return 0;
  } finally {
    await finish();
  }
}

/**
 * What every long-running `cairn run` sets up: info logs on stderr (its operational record),
 * SIGINT/SIGTERM as a clean stop, and the metrics endpoint when asked for.
 */
async function startWorker(
  ctx: CliContext,
  flags: RunFlags,
  stopping: string,
  partitions: () => ReadonlyMap<string, PartitionProcessor>,
): Promise<{ controller: AbortController; finish: () => Promise<void> }> {
  const metricsPort = flags.metricsPort === undefined ? undefined : parsePort(flags.metricsPort, '--metrics-port');
  if (!process.env.CAIRN_LOG_LEVEL && !ctx.globals.quiet) ctx.logger.level = 'info';
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals) => {
    ctx.logger.info({ signal }, stopping);
    controller.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const metrics = metricsPort === undefined ? undefined : await serveWorker({ registry: ctx.cairn.metrics.registry, port: metricsPort, node: ctx.config.node, partitions });
  if (metrics) ctx.logger.info({ url: `${metrics.url}/metrics`, endpoint: metrics.url }, 'serving metrics, health and live queries');
  return {
    controller,
    finish: async () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await metrics?.close();
    },
  };
}
