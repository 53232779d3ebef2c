import type { Command } from 'commander';
import { validatePartition, validateSnapshotId } from '../../core/names.js';
import type { VerifyProblem } from '../../snapshots/verify.js';
import { action } from '../context.js';

function describeProblem(p: VerifyProblem): string {
  if (p.problem === 'lsn') return `the state holds applied LSN ${p.actual}, the metadata says ${p.expected}`;
  if (p.expected !== undefined) return `${p.name}: ${p.problem} (expected ${p.expected}, got ${p.actual ?? '-'})`;
  return `${p.name}: ${p.problem}${p.actual !== undefined ? ` (${p.actual})` : ''}`;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description("check every file's size, sha256 and block crcs in the store, and the applied LSN inside the state; exit 1 on any mismatch")
    .requiredOption('--partition <p>', 'partition name')
    .option('--snapshot <id>', 'snapshot id (default: latest)')
    .action(
      action(async (ctx, opts: { partition: string; snapshot?: string }) => {
        const partition = validatePartition(opts.partition);
        const id = opts.snapshot === undefined ? undefined : validateSnapshotId(opts.snapshot);
        const report = await ctx.cairn.snapshots.verify(partition, id);
        ctx.output(report, () =>
          report.ok
            ? `ok: ${partition} snapshot ${report.snapshotId} (LSN ${report.lsn}): ${report.files} files, ${report.bytes} bytes and the applied LSN verified`
            : `FAILED: ${partition} snapshot ${report.snapshotId}:\n` + report.problems.map((p) => `  ${describeProblem(p)}`).join('\n'),
        );
        if (!report.ok) {
          const shown = report.problems.slice(0, 3).map(describeProblem).join('; ') + (report.problems.length > 3 ? `; and ${report.problems.length - 3} more` : '');
          process.stderr.write(`cairn: error: snapshot ${report.snapshotId} of ${partition} failed verification: ${shown} [CORRUPT]\n`);
        }
        return report.ok ? 0 : 1;
      }),
    );
}
