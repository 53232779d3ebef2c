import type { Command } from 'commander';
import { parseLsn, validatePartition } from '../../core/names.js';
import { serveMetrics } from '../../runtime/metrics-server.js';
import { loadProcessor } from '../../runtime/processor-module.js';
import type { RunSummary } from '../../runtime/partition-processor.js';
import { action } from '../context.js';

interface RunFlags {
  partition: string;
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
    `${s.partition}: started from ${s.start.source} state at LSN ${s.start.lsn}${s.start.reason ? ` (${s.start.reason})` : ''}`,
    `applied ${s.recordsApplied} records${s.recordsSkipped ? `, skipped ${s.recordsSkipped}` : ''}; now at LSN ${s.appliedLsn}; stopped by ${s.stoppedBy}`,
    `snapshots: ${published.length} published${published.length ? ` (last at LSN ${published[published.length - 1]!.metadata.lsn})` : ''}, ${s.snapshots.length - published.length} superseded`,
  ].join('\n');
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a partition processor; bootstraps when local state is missing or behind a trim gap')
    .requiredOption('--partition <p>', 'partition name')
    .requiredOption('--processor <module>', 'processor module (.ts or .js) whose default export is { name, apply }')
    .option('--until-lsn <n>', 'stop once this LSN is applied')
    .option('--stop-at-end', 'stop once caught up with the end of the log')
    .option('--snapshot-every <n>', 'snapshot after this many records (overrides snapshots.everyRecords; 0 = never)')
    .option('--checkpoint-on-exit', 'take a final snapshot before exiting')
    .option('--metrics-port <port>', 'serve Prometheus metrics on http://127.0.0.1:<port>/metrics (0 = any free port)')
    .action(
      action(async (ctx, flags: RunFlags) => {
        const partition = validatePartition(flags.partition);
        const untilLsn = flags.untilLsn === undefined ? undefined : parseLsn(flags.untilLsn, '--until-lsn');
        const everyRecords = flags.snapshotEvery === undefined ? undefined : parseLsn(flags.snapshotEvery, '--snapshot-every');
        const metricsPort = flags.metricsPort === undefined ? undefined : parseLsn(flags.metricsPort, '--metrics-port');
        const processor = await loadProcessor(flags.processor);
        // A long-running worker: structured info logs on stderr are its operational record.
        if (!process.env.CAIRN_LOG_LEVEL && !ctx.globals.quiet) ctx.logger.level = 'info';
        const controller = new AbortController();
        const stop = (signal: NodeJS.Signals) => {
          ctx.logger.info({ signal }, 'stopping after the current batch');
          controller.abort();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const metrics = metricsPort === undefined ? undefined : await serveMetrics(ctx.cairn.metrics.registry, metricsPort);
        if (metrics) ctx.logger.info({ url: metrics.url }, 'serving metrics');
        const progress = ctx.progress('bootstrap');
        const runner = ctx.cairn.processor(partition, processor, { ...(everyRecords !== undefined ? { everyRecords } : {}), onBootstrapProgress: progress });
        try {
          const summary = await runner.run({
            signal: controller.signal,
            ...(untilLsn !== undefined ? { untilLsn } : {}),
            ...(flags.stopAtEnd ? { stopAtEnd: true } : {}),
            ...(flags.checkpointOnExit ? { checkpointOnExit: true } : {}),
          });
          ctx.output(summary, () => describeRun(summary));
        } finally {
          progress.stop();
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          await runner.close();
          await metrics?.close();
        }
      }),
    );
}
