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

  state
    .command('get')
    .description("one key of a partition's state: from a running worker's live state (--worker URL), or from a stopped state folder")
    .requiredOption('--partition <p>', 'partition name')
    .option('--worker <url>', "a running worker's endpoint (cairn run --metrics-port), e.g. http://127.0.0.1:9464")
    .argument('<key>', 'the state key')
    .action(
      action(async (ctx, key: string, opts: { partition: string; worker?: string }) => {
        const partition = validatePartition(opts.partition);
        const found = opts.worker !== undefined ? await getFromWorker(opts.worker, partition, key) : await getFromFolder(ctx.cairn.stateDirOf(partition), partition, key);
        ctx.output(found, () => JSON.stringify(found.value));
      }),
    );
}

interface Found {
  partition: string;
  key: string;
  value: unknown;
  lsn: number;
}

/** Bound on a live query: a worker that does not answer is an error, not a wait. */
const WORKER_TIMEOUT_MS = 10_000;

async function getFromWorker(worker: string, partition: string, key: string): Promise<Found> {
  let base: URL;
  try {
    base = new URL(worker);
  } catch {
    throw badInput(`--worker ${JSON.stringify(worker)} is not a URL`);
  }
  const url = new URL(`v1/partitions/${encodeURIComponent(partition)}/state/${encodeURIComponent(key)}`, base.href.endsWith('/') ? base : `${base.href}/`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(WORKER_TIMEOUT_MS) });
  } catch (err) {
    throw new CairnError('STATE_UNAVAILABLE', `worker ${base.origin} did not answer: ${(err as Error).message}`, { cause: err, retryable: true, details: { worker: base.origin } });
  }
  const body = (await res.json().catch(() => ({}))) as Partial<Found> & { error?: { message?: string } };
  if (res.status === 404) throw new CairnError('NOT_FOUND', body.error?.message ?? `${url.pathname}: not found`, { details: { partition, key, worker: base.origin } });
  if (res.status !== 200) throw new CairnError('STATE_UNAVAILABLE', `worker ${base.origin} answered ${res.status}: ${body.error?.message ?? ''}`, { details: { worker: base.origin } });
  return { partition, key, value: body.value, lsn: body.lsn ?? -1 };
}

async function getFromFolder(dir: string, partition: string, key: string): Promise<Found> {
  if (!existsSync(join(dir, 'CURRENT'))) throw new CairnError('NOT_FOUND', `partition ${partition} has no local state (no LevelDB in ${dir})`, { details: { partition, dir } });
  const db = await PartitionState.open(dir, { create: false });
  try {
    const { lsn, entries } = await db.query({ key });
    if (entries.length === 0) throw new CairnError('NOT_FOUND', `no key ${JSON.stringify(key)} in ${partition} at LSN ${lsn}`, { details: { partition, key, lsn } });
    return { partition, key, value: entries[0]!.value, lsn };
  } finally {
    await db.close();
  }
}
