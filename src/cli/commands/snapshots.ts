import type { Command } from 'commander';
import { validatePartition, validateSnapshotId } from '../../core/names.js';
import { action, mib } from '../context.js';

export function registerSnapshots(program: Command): void {
  const snapshots = program.command('snapshots').description('list and inspect snapshots in the object store');

  snapshots
    .command('list')
    .description('snapshots of a partition, newest first')
    .requiredOption('--partition <p>', 'partition name')
    .action(
      action(async (ctx, opts: { partition: string }) => {
        const partition = validatePartition(opts.partition);
        const { pointer, snapshots: list } = await ctx.cairn.snapshots.listWithPointer(partition);
        // An unreadable latest.json does not hide the folders; it is reported, never guessed around.
        const warning = pointer.exists && !pointer.ok
          ? `warning: pointer unreadable: ${pointer.error ?? `${partition}/latest.json does not parse`}; which snapshots are retained/latest is unknown below. Repair it: cairn pointer rebuild --partition ${partition}\n`
          : '';
        ctx.output({ partition, pointer, snapshots: list }, () =>
          warning +
          (list.length === 0
            ? `${partition}: no snapshots`
            : list
                .map((s) => `${s.latest ? '*' : s.retained ? '+' : s.evicted ? '~' : ' '} ${s.snapshotId}  lsn ${String(s.lsn).padStart(10)}  ${s.createdAt ?? 'incomplete'}  ${s.bytes === null ? '-' : mib(s.bytes)}  ${s.path}`)
                .join('\n') + '\n(* latest, + retained, ~ evicted: deleted after the eviction grace)'),
        );
      }),
    );

  snapshots
    .command('gc')
    .description('delete objects no readable snapshot references (latest.json retained and evicted, pins), in folders older than an hour; needed with snapshots.sharing "shared", harmless with "copy"')
    .requiredOption('--partition <p>', 'partition name')
    .option('--dry-run', 'say what would be deleted')
    .action(
      action(async (ctx, opts: { partition: string; dryRun?: boolean }) => {
        const partition = validatePartition(opts.partition);
        const r = await ctx.cairn.snapshots.collectGarbage(partition, { dryRun: Boolean(opts.dryRun) });
        ctx.output(r, () =>
          [
            ...r.deleted.map((k) => `${r.dryRun ? 'would delete' : 'deleted'} ${k}`),
            `${partition}: ${r.roots.length} readable snapshots, ${r.swept.length} other folders swept, ${r.deleted.length} objects ${r.dryRun ? 'to delete' : 'deleted'}, ${r.shared.length} kept as shared`,
          ].join('\n'),
        );
      }),
    );

  snapshots
    .command('show')
    .description("a snapshot's metadata.json (default: the latest)")
    .requiredOption('--partition <p>', 'partition name')
    .option('--snapshot <id>', 'snapshot id')
    .action(
      action(async (ctx, opts: { partition: string; snapshot?: string }) => {
        const partition = validatePartition(opts.partition);
        const id = opts.snapshot === undefined ? undefined : validateSnapshotId(opts.snapshot);
        const meta = await ctx.cairn.snapshots.metadata(partition, id);
        ctx.output(meta, () => JSON.stringify(meta, null, 2));
      }),
    );
}
