import type { Command } from 'commander';
import { validatePartition, validateSnapshotId } from '../../core/names.js';
import { action } from '../context.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description("check every file's size and sha256 in the store; exit 1 on any mismatch")
    .requiredOption('--partition <p>', 'partition name')
    .option('--snapshot <id>', 'snapshot id (default: latest)')
    .action(
      action(async (ctx, opts: { partition: string; snapshot?: string }) => {
        const partition = validatePartition(opts.partition);
        const id = opts.snapshot === undefined ? undefined : validateSnapshotId(opts.snapshot);
        const report = await ctx.cairn.snapshots.verify(partition, id);
        ctx.output(report, () =>
          report.ok
            ? `ok: ${partition} snapshot ${report.snapshotId} (LSN ${report.lsn}): ${report.files} files, ${report.bytes} bytes verified`
            : `FAILED: ${partition} snapshot ${report.snapshotId}:\n` + report.problems.map((p) => `  ${p.name}: ${p.problem}${p.expected !== undefined ? ` (expected ${p.expected}, got ${p.actual ?? '-'})` : ''}`).join('\n'),
        );
        if (!report.ok) process.stderr.write(`cairn: error: snapshot ${report.snapshotId} of ${partition} failed verification: ${report.problems.length} bad file(s) [CORRUPT]\n`);
        return report.ok ? 0 : 1;
      }),
    );
}
