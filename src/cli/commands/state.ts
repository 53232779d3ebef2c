import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CairnError, badInput } from '../../core/errors.js';
import { validatePartition } from '../../core/names.js';
import { PartitionState } from '../../state/partition-state.js';
import { action, writeStdout } from '../context.js';

export function registerState(program: Command): void {
  const state = program.command('state').description('inspect local partition state');
  state
    .command('dump')
    .description('JSON lines: first {"lsn": N}, then {"key", "value"} in key order')
    .option('--state-dir <dir>', 'a LevelDB state folder')
    .option('--partition <p>', "the partition's folder under the configured stateDir")
    .action(
      action(async (ctx, opts: { stateDir?: string; partition?: string }) => {
        if ((opts.stateDir === undefined) === (opts.partition === undefined)) throw badInput('give exactly one of --state-dir or --partition');
        const partition = opts.partition === undefined ? undefined : validatePartition(opts.partition);
        const dir = opts.stateDir ? resolve(opts.stateDir) : ctx.cairn.stateDirOf(partition!);
        // Read-only: a partition without local state is reported, never created.
        if (partition !== undefined && !existsSync(join(dir, 'CURRENT'))) {
          throw new CairnError('NOT_FOUND', `partition ${partition} has no local state (no LevelDB in ${dir})`, { details: { partition, dir } });
        }
        const db = await PartitionState.open(dir, { create: false });
        try {
          // Stops as soon as the reader has what it wanted (`| head`): exit 0, no stack trace.
          if (!(await writeStdout(`${JSON.stringify({ lsn: db.appliedLsn })}\n`))) return;
          for await (const entry of db.entries()) if (!(await writeStdout(`${JSON.stringify(entry)}\n`))) return;
        } finally {
          await db.close();
        }
      }),
    );
}
