import type { Command } from 'commander';
import { CLI_DEFAULTS } from '../../core/defaults.js';
import { parseLsn, parsePositiveInt, validateForkName, validatePartition } from '../../core/names.js';
import { loadProcessor } from '../../runtime/processor-module.js';
import { action, mib } from '../context.js';
import { describeRun } from './run.js';

function age(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export function registerFork(program: Command): void {
  const fork = program.command('fork').description('O(1) forks of a partition\'s snapshots, for what-if replays');

  fork
    .command('create')
    .description('fork a snapshot: writes a metadata.json referencing the parent\'s files, latest.json and a pin; no table bytes')
    .requiredOption('--from <source>', 'P (latest snapshot), P@SNAPSHOTID, or P@lsn:N (point in time: newest snapshot <= N, caught up to N on first open)')
    .requiredOption('--name <fork>', 'name of the new fork (a partition name)')
    .action(
      action(async (ctx, opts: { from: string; name: string }) => {
        validateForkName(opts.name);
        const r = await ctx.cairn.forks.create(opts.from, opts.name);
        ctx.output(r, () =>
          [
            r.snapshotId === null
              ? `forked the empty state of ${r.parent.partition} as ${r.fork} (no snapshot at or below LSN ${r.targetLsn}; the log holds LSN 0 onwards)`
              : `forked ${r.parent.partition}@${r.parent.snapshotId} (LSN ${r.lsn}) as ${r.fork}: snapshot ${r.snapshotId}`,
            ...(r.targetLsn !== undefined ? [`point in time: catches up to LSN ${r.targetLsn} on first open`] : []),
            `${r.requests} requests, ${r.bytesWritten} bytes written, ${mib(r.sharedBytes)} shared with the parent`,
          ].join('\n'),
        );
      }),
    );

  fork
    .command('list')
    .description('forks with their parent, pinned snapshot, age and bytes shared vs own')
    .action(
      action(async (ctx) => {
        const forks = await ctx.cairn.forks.list();
        ctx.output({ forks }, () =>
          forks.length === 0
            ? 'no forks'
            : forks
                .map((f) =>
                  f.status === 'dangling'
                    ? `${f.fork}  DANGLING pin on ${f.pinned} (an interrupted create or drop: cairn fork drop ${f.fork})`
                    : `${f.fork}  parent ${f.parent!.snapshotId === null ? `${f.parent!.partition} (empty state)` : `${f.parent!.partition}@${f.parent!.snapshotId} (LSN ${f.parent!.lsn})`}  ${f.latest ? `at LSN ${f.latest.lsn}` : `catches up to LSN ${f.targetLsn} on first replay`}  age ${age(f.ageMs)}  shared ${mib(f.sharedBytes)}  own ${mib(f.ownBytes)}  ${f.pinned ? `pins ${f.pinned}` : 'no pin (owns its files)'}`,
                )
                .join('\n'),
        );
      }),
    );

  fork
    .command('drop')
    .description('remove a fork, its snapshots and its pin (crash-safe: re-run to finish an interrupted drop)')
    .argument('<fork>', 'fork name')
    .action(
      action(async (ctx, name: string) => {
        const r = await ctx.cairn.forks.drop(validateForkName(name));
        ctx.output(r, () => `dropped ${r.fork}: ${r.deletedObjects} objects deleted, ${r.releasedPins.length} pin(s) released`);
      }),
    );

  program
    .command('replay')
    .description("apply the parent's log records to a fork with other logic")
    .requiredOption('--fork <fork>', 'fork name')
    .requiredOption('--processor <module>', 'processor module (.ts or .js)')
    .option('--to-lsn <n>', "stop once this LSN is applied (default: the log's end when replay starts)")
    .option('--checkpoint-on-exit', 'snapshot the fork when done')
    .option('--catch-up-processor <module>', "point-in-time forks: the logic that first brings the fork to its target LSN, normally the parent's (default: --processor)")
    .action(
      action(async (ctx, opts: { fork: string; processor: string; toLsn?: string; checkpointOnExit?: boolean; catchUpProcessor?: string }) => {
        const name = validateForkName(opts.fork);
        const toLsn = opts.toLsn === undefined ? undefined : parseLsn(opts.toLsn, '--to-lsn');
        const processor = await loadProcessor(opts.processor);
        const catchUpProcessor = opts.catchUpProcessor === undefined ? undefined : await loadProcessor(opts.catchUpProcessor);
        const controller = new AbortController();
        const stop = () => controller.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          const r = await ctx.cairn.forks.replay(name, processor, { signal: controller.signal, ...(catchUpProcessor ? { catchUpProcessor } : {}), ...(toLsn !== undefined ? { toLsn } : {}), ...(opts.checkpointOnExit ? { checkpointOnExit: true } : {}) });
          ctx.output(r, () => `${r.caughtUpTo !== undefined ? `caught up to LSN ${r.caughtUpTo} first\n` : ''}replayed ${r.log} into ${r.fork} with ${processor.name}\n${describeRun(r)}`);
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      }),
    );

  program
    .command('diff')
    .description('compare two snapshots key by key (A, B = P or P@SNAPSHOTID), streaming with bounded memory')
    .argument('<a>', 'P or P@SNAPSHOTID')
    .argument('<b>', 'P or P@SNAPSHOTID')
    .option('--samples <n>', 'differences to show', String(CLI_DEFAULTS.diffSamples))
    .action(
      action(async (ctx, a: string, b: string, opts: { samples: string }) => {
        const samples = parseLsn(opts.samples, '--samples');
        const r = await ctx.cairn.forks.diff(a, b, { samples });
        ctx.output(r, () =>
          [
            ...(r.warning ? [`warning: different LSNs: ${r.warning}`] : []),
            `A ${r.a.partition}@${r.a.snapshotId} (LSN ${r.a.lsn})  B ${r.b.partition}@${r.b.snapshotId} (LSN ${r.b.lsn})${r.lsns.same ? '  same LSN' : ''}`,
            `added ${r.added}, removed ${r.removed}, changed ${r.changed}, unchanged ${r.unchanged}`,
            ...r.samples.map((s) => `  ${s.change === 'added' ? '+' : s.change === 'removed' ? '-' : '~'} ${s.key}: ${JSON.stringify(s.a ?? null)} -> ${JSON.stringify(s.b ?? null)}`),
          ].join('\n'),
        );
      }),
    );

  program
    .command('prune')
    .description('delete old snapshots of a partition; never the latest, never one a fork pins')
    .requiredOption('--partition <p>', 'partition name')
    .requiredOption('--keep <n>', 'complete snapshots to keep (newest first)')
    .option('--dry-run', 'say what would be deleted')
    .action(
      action(async (ctx, opts: { partition: string; keep: string; dryRun?: boolean }) => {
        const partition = validatePartition(opts.partition);
        const keep = parsePositiveInt(opts.keep, '--keep');
        const r = await ctx.cairn.forks.prune(partition, keep, Boolean(opts.dryRun));
        ctx.output(r, () =>
          [...r.deleted.map((p) => `${r.dryRun ? 'would delete' : 'deleted'} ${p}`), ...r.kept.map((k) => `kept ${k.path} (${k.why})`)].join('\n') || `${partition}: no snapshots`,
        );
      }),
    );
}
