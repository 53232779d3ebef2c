import { resolve } from 'node:path';
import type { Command } from 'commander';
import { validatePartition } from '../../core/names.js';
import { action, mib } from '../context.js';

export function registerCheckpoint(program: Command): void {
  program
    .command('checkpoint')
    .description("checkpoint a stopped partition's state folder into the object store")
    .requiredOption('--partition <p>', 'partition name')
    .option('--state-dir <dir>', 'the LevelDB folder (default: <stateDir>/<partition>)')
    .action(
      action(async (ctx, opts: { partition: string; stateDir?: string }) => {
        const partition = validatePartition(opts.partition);
        const dir = opts.stateDir ? resolve(opts.stateDir) : ctx.cairn.stateDirOf(partition);
        const progress = ctx.progress('checkpoint');
        const result = await ctx.cairn.checkpointStateDir(partition, dir, progress).finally(() => progress.stop());
        const m = result.metadata;
        ctx.output({ status: result.status, ...m }, () =>
          `${result.status}: ${partition} snapshot ${m.snapshotId} at LSN ${m.lsn}: ${m.files.length} files, uploaded ${mib(m.stats.uploadedBytes)}, copied server-side ${mib(m.stats.copiedBytes)}, sync pause ${m.stats.syncPauseMs.toFixed(1)} ms`,
        );
      }),
    );
}
