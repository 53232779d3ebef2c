import { resolve } from 'node:path';
import type { Command } from 'commander';
import { validatePartition, validateSnapshotId } from '../../core/names.js';
import { action, mib } from '../context.js';

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('download, verify and install a snapshot into a folder (home store first, then the other stores of the partition\'s class; falls back along retained snapshots)')
    .requiredOption('--partition <p>', 'partition name')
    .option('--snapshot <id>', 'snapshot id (default: latest, with fallback)')
    .requiredOption('--to <dir>', 'target folder: missing or empty, or (with --force) a stopped state folder of the partition')
    .option('--force', "replace the partition's stopped state folder at --to (never one a running processor holds)")
    .action(
      action(async (ctx, opts: { partition: string; snapshot?: string; to: string; force?: boolean }) => {
        const partition = validatePartition(opts.partition);
        const snapshotId = opts.snapshot === undefined ? undefined : validateSnapshotId(opts.snapshot);
        const progress = ctx.progress('restore');
        try {
          const result = await ctx.cairn.placement.restore({
            partition,
            targetDir: resolve(opts.to),
            // Never a surprise: a folder that is not this partition's state is refused untouched.
            guard: { force: Boolean(opts.force) },
            onProgress: progress,
            onFallback: (s) => process.stderr.write(`cairn: warning: snapshot ${s.path} unusable (${s.reason}); falling back to the next retained snapshot\n`),
            ...(snapshotId ? { snapshotId } : {}),
          });
          progress.stop();
          const out = { partition, snapshotId: result.metadata.snapshotId, lsn: result.metadata.lsn, dir: resolve(opts.to), bytes: result.bytes, durationMs: Math.round(result.durationMs), store: result.store, fellBackFrom: result.skipped };
          ctx.output(out, () =>
            `restored ${partition} snapshot ${out.snapshotId} (LSN ${out.lsn}, ${mib(out.bytes)}) into ${out.dir} in ${out.durationMs} ms from store ${out.store}` +
            (result.skipped.length ? `\nfell back past: ${result.skipped.map((s) => s.path).join(', ')}` : ''),
          );
        } finally {
          progress.stop();
        }
      }),
    );
}
