import type { Command } from 'commander';
import { badInput } from '../../core/errors.js';
import { validatePartition } from '../../core/names.js';
import type { RebuildResult } from '../../snapshots/rebuild.js';
import { action } from '../context.js';

export function registerPointer(program: Command): void {
  const pointer = program.command('pointer').description("inspect and repair a partition's latest.json pointer");

  pointer
    .command('rebuild')
    .description(
      'rebuild {partition}/latest.json from the newest complete snapshot folders whose every file verifies (size and sha256); ' +
        'a dry run that prints the document it would write, unless --apply',
    )
    .requiredOption('--partition <p>', 'partition name')
    .option('--apply', 'write it, by conditional PUT against the latest.json read at the start (a concurrent checkpoint or repair is never overwritten)')
    .option('--retain <n>', 'snapshots to keep in retained[], the new latest included (default: config snapshots.retain); snapshots pinned by forks always stay')
    .addHelpText(
      'after',
      [
        '',
        'For a latest.json that does not parse (restore, snapshots list and prune then refuse or',
        'warn), or one that lags behind a snapshot that was uploaded but never published.',
        'Snapshot folders are tried newest first (by LSN); a folder that is incomplete or fails',
        'verification is reported and skipped. Nothing is deleted. A readable pointer is never',
        'moved to a lower LSN (exit 1), and one that already names the newest snapshot that',
        'verifies is left alone ("nothing to do"). Exit 1 when no snapshot verifies (NO_SNAPSHOT)',
        'or when latest.json changed meanwhile (CONDITION_FAILED: re-run).',
        '',
        'Example:',
        '  cairn pointer rebuild --partition p0            # what it would write, and why',
        '  cairn pointer rebuild --partition p0 --apply    # write it',
      ].join('\n'),
    )
    .action(
      action(async (ctx, opts: { partition: string; apply?: boolean; retain?: string }) => {
        const partition = validatePartition(opts.partition);
        const retain = opts.retain === undefined ? undefined : parseRetain(opts.retain);
        const result = await ctx.cairn.snapshots.rebuildPointer(partition, { retain: retain ?? ctx.config.snapshots.retain, apply: Boolean(opts.apply) });
        ctx.output(result, () => render(result));
      }),
    );
}

function parseRetain(text: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw badInput(`invalid --retain ${JSON.stringify(text)}: expected a positive integer`);
  return Number(text);
}

function render(r: RebuildResult): string {
  const key = `${r.partition}/latest.json`;
  const lines: string[] = [];
  lines.push(
    r.current.ok ? `current pointer: ${key} at LSN ${r.current.lsn} (${r.current.snapshotId})`
    : r.current.exists ? `current pointer: UNREADABLE: ${r.current.error ?? `${key} does not parse`}`
    : `current pointer: ${key} is absent`,
  );
  lines.push('snapshot folders considered (newest first):');
  for (const c of r.considered) {
    const pinned = c.pinnedBy ? ` [pinned by ${c.pinnedBy.join(', ')}]` : '';
    lines.push(`  ${c.ok ? 'verified ok' : 'rejected   '}  ${c.path} (LSN ${c.lsn})${pinned}${c.ok ? '' : `: ${c.reason ?? 'unknown reason'}`}`);
  }
  if (r.status === 'nothing-to-do') {
    lines.push(`nothing to do: ${key} already points at the newest snapshot that verifies (${r.pointer.path}, LSN ${r.pointer.lsn})`);
    return lines.join('\n');
  }
  lines.push(r.written ? `wrote ${key}:` : `would write ${key} (dry run; add --apply to write it):`);
  lines.push(JSON.stringify(r.pointer, null, 2));
  return lines.join('\n');
}
