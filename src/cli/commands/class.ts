import { join } from 'node:path';
import type { Command } from 'commander';
import { badInput } from '../../core/errors.js';
import { validatePartition } from '../../core/names.js';
import { requireClass } from '../../core/placement-config.js';
import { alignPartition, everyPartition, type AlignReport } from '../../snapshots/retier.js';
import type { CliContext } from '../context.js';
import { action } from '../context.js';

/**
 * Storage classes from the command line: which classes exist and where they live, a
 * partition's class (`class set` moves its snapshots), and bringing stored snapshots in line
 * with their class (`retier` after a class was redefined, `replicate` after a store missed
 * checkpoints).
 */
export function registerClass(program: Command): void {
  const cls = program
    .command('class')
    .description("storage classes: admin-defined names for where snapshots live (stores, S3 storage class)")
    .addHelpText(
      'after',
      `
Classes are defined in the config; partitions get one by pattern, or by \`class set\`:
  "stores": { "eu": { "url": "s3://b/p", "endpoint": "…" }, "us": { "url": "s3://b/p", "endpoint": "…" } },
  "homeStore": "eu",
  "storageClasses": { "GEO": { "stores": ["eu", "us"], "s3StorageClass": "REDUCED_REDUNDANCY" } },
  "classDefaults": [ { "match": "orders-*", "class": "GEO" } ]

Every checkpoint of a GEO partition goes to eu and us, each with its own latest.json; reads
start at the home store and fall back to the other; the log is trimmed only below what both
hold. A store that was down is caught up by the next checkpoint or \`cairn replicate\`.

Examples:
  cairn class list --partition orders-1
  cairn class set --partition audit-7 GEO      # copy its snapshots to us, reduced redundancy
  cairn retier --class GEO                     # after GEO's definition changed
  cairn replicate --partition orders-1         # after us was down`,
    );

  cls
    .command('list')
    .description('the configured classes: their stores, S3 storage class and which partitions default to them')
    .option('--partition <p>', "also say which class this partition is in, and why")
    .action(
      action(async (ctx, opts: { partition?: string }) => {
        const p = ctx.cairn.config.placement;
        const classes = Object.entries(p.storageClasses).map(([name, c]) => ({
          name,
          stores: c.stores,
          s3StorageClass: c.s3StorageClass ?? null,
          default: name === p.defaultClass,
          rules: p.classDefaults.filter((r) => r.class === name).map((r) => r.match),
        }));
        const partition = opts.partition === undefined ? undefined : await partitionClass(ctx, validatePartition(opts.partition));
        ctx.output({ homeStore: p.homeStore, stores: Object.fromEntries(Object.entries(p.stores).map(([n, s]) => [n, s.url])), classes, ...(partition ? { partition } : {}) }, () =>
          [
            ...classes.map((c) => `${c.name}${c.default ? ' (default)' : ''}: stores ${c.stores.join(', ')}; S3 class ${c.s3StorageClass ?? 'bucket default'}${c.rules.length ? `; partitions ${c.rules.join(', ')}` : ''}`),
            `home store: ${p.homeStore}`,
            ...(partition ? [`${partition.partition}: ${partition.className} (${partition.source === 'override' ? 'set by cairn class set' : 'by the config\'s rules'})`] : []),
          ].join('\n'),
        );
      }),
    );

  cls
    .command('set')
    .description("give a partition another storage class and move its retained snapshots there (copies to stores new to it, the new S3 storage class in place, removal from stores it left)")
    .requiredOption('--partition <p>', 'partition name')
    .argument('<class>', 'a class name from storageClasses (or STANDARD)')
    .action(
      action(async (ctx, className: string, opts: { partition: string }) => {
        const partition = validatePartition(opts.partition);
        // setOverride refuses an unknown class (BAD_INPUT) before anything is written.
        await ctx.cairn.placement.setOverride(partition, className);
        return report(ctx, [await align(ctx, partition, false)]);
      }),
    );

  program
    .command('retier')
    .description("bring stored snapshots in line with their class's current definition: the newest snapshot in every store of the class, objects in its S3 storage class, nothing left in stores outside it")
    .option('--partition <p>', 'one partition')
    .option('--class <c>', 'every partition of this class')
    .action(
      action(async (ctx, opts: { partition?: string; class?: string }) => {
        if ((opts.partition === undefined) === (opts.class === undefined)) throw badInput('give exactly one of --partition P or --class C');
        const partitions = opts.partition !== undefined ? [validatePartition(opts.partition)] : await partitionsOfClass(ctx, opts.class!);
        const reports: AlignReport[] = [];
        for (const partition of partitions) reports.push(await align(ctx, partition, false));
        return report(ctx, reports);
      }),
    );

  program
    .command('replicate')
    .description('copy the newest snapshot into every store of the class that missed it (a region that was down)')
    .option('--partition <p>', 'one partition (default: every partition in any store)')
    .action(
      action(async (ctx, opts: { partition?: string }) => {
        const partitions = opts.partition !== undefined ? [validatePartition(opts.partition)] : await everyPartition(ctx.cairn.placement);
        const reports: AlignReport[] = [];
        for (const partition of partitions) reports.push(await align(ctx, partition, true));
        return report(ctx, reports);
      }),
    );
}

async function partitionClass(ctx: CliContext, partition: string) {
  const placed = await ctx.cairn.placement.placementOf(partition);
  return { partition, className: placed.className, source: placed.source, stores: placed.stores.map((s) => s.name) };
}

async function partitionsOfClass(ctx: CliContext, className: string): Promise<string[]> {
  requireClass(ctx.cairn.config.placement, className);
  const all = await everyPartition(ctx.cairn.placement);
  const classes = await Promise.all(all.map(async (name) => ({ name, className: (await ctx.cairn.placement.placementOf(name)).className })));
  return classes.filter((c) => c.className === className).map((c) => c.name);
}

function align(ctx: CliContext, partition: string, replicateOnly: boolean): Promise<AlignReport> {
  return alignPartition(ctx.cairn.placement, partition, {
    node: ctx.cairn.config.node,
    stagingDir: join(ctx.cairn.config.stateDir, '.staging'),
    logger: ctx.cairn.logger,
    concurrency: ctx.cairn.config.snapshots.concurrency,
    retire: ctx.cairn.config.snapshots.retire,
    replicateOnly,
  });
}

/** Exit 1 when any partition is not aligned (a store failed): the command can simply be run again. */
function report(ctx: CliContext, reports: AlignReport[]): number {
  ctx.output({ partitions: reports }, () =>
    reports.length === 0
      ? 'no partitions'
      : reports
          .map((r) =>
            [
              `${r.partition}: class ${r.className}${r.aligned ? '' : ' (NOT aligned: run again once the failed stores answer)'}`,
              ...r.stores.map((s) =>
                'failed' in s
                  ? `  ${s.store}: failed: ${s.failed.message}`
                  : s.role === 'member'
                    ? `  ${s.store}: ${s.replicated ? `replicated snapshot ${s.replicated.snapshotId} (LSN ${s.replicated.lsn})` : 'had the newest snapshot'}, ${s.reclassed} objects rewritten in the class's S3 storage class; latest LSN ${s.lsn}`
                    : `  ${s.store}: left the class: ${s.removed} objects removed, ${s.kept} kept for forks`,
              ),
            ].join('\n'),
          )
          .join('\n'),
  );
  return reports.some((r) => !r.aligned) ? 1 : 0;
}
