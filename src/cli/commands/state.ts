import { resolve } from 'node:path';
import type { Command } from 'commander';
import { badInput } from '../../core/errors.js';
import { validatePartition } from '../../core/names.js';
import { PartitionState } from '../../state/partition-state.js';
import { action } from '../context.js';

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
        const dir = opts.stateDir ? resolve(opts.stateDir) : ctx.cairn.stateDirOf(validatePartition(opts.partition));
        const db = await PartitionState.open(dir, { create: false });
        try {
          const out = process.stdout;
          const write = (line: string) => (out.write(line) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r())));
          await write(`${JSON.stringify({ lsn: db.appliedLsn })}\n`);
          for await (const entry of db.entries()) await write(`${JSON.stringify(entry)}\n`);
        } finally {
          await db.close();
        }
      }),
    );
}
