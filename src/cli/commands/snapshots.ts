import type { Command } from 'commander';
import { validatePartition, validateSnapshotId } from '../../core/names.js';
import type { SnapshotList, SnapshotListing } from '../../snapshots/repository.js';
import { action, mib } from '../context.js';

export function registerSnapshots(program: Command): void {
  const snapshots = program.command('snapshots').description('list and inspect snapshots in the object store');

  snapshots
    .command('list')
    .description("snapshots of a partition, newest first, with each one's storage class and the stores that hold it")
    .requiredOption('--partition <p>', 'partition name')
    .action(
      action(async (ctx, opts: { partition: string }) => {
        const partition = validatePartition(opts.partition);
        const placed = await ctx.cairn.placement.placementOf(partition);
        // The home store's view leads (its pointer decides latest/retained); the others say where else each snapshot lives.
        const views = await Promise.allSettled(placed.stores.map((s) => s.repository.listWithPointer(partition)));
        const home = views[0]!;
        if (home.status === 'rejected' && views.every((v) => v.status === 'rejected')) throw home.reason;
        const unreachable = placed.stores.filter((_, i) => views[i]!.status === 'rejected').map((s) => s.name);
        const lead = views.find((v): v is PromiseFulfilledResult<SnapshotList> => v.status === 'fulfilled')!.value;
        // One row per snapshot: the leading store's listing (its pointer's flags), then what only others hold.
        const rows = new Map<string, SnapshotListing & { stores: string[] }>();
        for (const snap of lead.snapshots) rows.set(snap.snapshotId, { ...snap, stores: [] });
        views.forEach((v, i) => {
          if (v.status !== 'fulfilled') return;
          for (const snap of v.value.snapshots.filter((x) => x.complete)) {
            const row = rows.get(snap.snapshotId) ?? { ...snap, retained: false, latest: false, evicted: false, stores: [] };
            row.stores.push(placed.stores[i]!.name);
            rows.set(snap.snapshotId, row);
          }
        });
        const list = [...rows.values()].sort((a, b) => (a.snapshotId < b.snapshotId ? 1 : -1));
        const pointer = lead.pointer;
        // An unreadable latest.json does not hide the folders; it is reported, never guessed around.
        const warning = pointer.exists && !pointer.ok
          ? `warning: pointer unreadable: ${pointer.error ?? `${partition}/latest.json does not parse`}; which snapshots are retained/latest is unknown below. Repair it: cairn pointer rebuild --partition ${partition}\n`
          : '';
        const away = unreachable.length ? `warning: store(s) ${unreachable.join(', ')} did not answer; their snapshots are not listed\n` : '';
        ctx.output({ partition, storageClass: placed.className, pointer, snapshots: list, ...(unreachable.length ? { unreachable } : {}) }, () =>
          warning +
          away +
          (list.length === 0
            ? `${partition}: no snapshots`
            : `${partition}: class ${placed.className} (stores ${placed.stores.map((s) => s.name).join(', ')})\n` +
              list
                .map((x) => `${x.latest ? '*' : x.retained ? '+' : x.evicted ? '~' : ' '} ${x.snapshotId}  lsn ${String(x.lsn).padStart(10)}  ${x.createdAt ?? 'incomplete'}  ${x.bytes === null ? '-' : mib(x.bytes)}  ${x.storageClass ?? '-'}  [${x.stores.join(', ')}]  ${x.path}`)
                .join('\n') + '\n(* latest, + retained, ~ evicted: deleted after the eviction grace; [stores holding it])'),
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
            ...r.retired.map((k) => `${r.dryRun ? 'would tag retired' : 'tagged retired'} ${k}`),
            `${partition}: ${r.roots.length} readable snapshots, ${r.swept.length} other folders swept, ${r.deleted.length} objects ${r.dryRun ? 'to delete' : 'deleted'}${r.retired.length ? `, ${r.retired.length} ${r.dryRun ? 'to tag' : 'tagged'} cairn-retired for the bucket's lifecycle` : ''}, ${r.shared.length} kept as shared`,
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
