/**
 * A child process for test/snapshots/gc-kill.test.ts, run as
 * `node --import tsx test/helpers/gc-child.ts '<json job>'`.
 *
 * Runs the collector (no grace: every folder is old enough) over `partitions` in order, or
 * prune (keep N) of the first, on a filesystem store rooted where the parent says. Deletes
 * are passed on to the store one object at a time, and with `killAt` the process SIGKILLs
 * itself just before deleting its `killAt`-th object: a crash lands deterministically
 * between any two objects, wherever the operation is. Without being killed it prints one
 * JSON line `{"done": {"deleted": N}}`.
 */
import { armFailpoints } from '../../src/core/failpoints.js';
import { collectGarbage } from '../../src/snapshots/sweep.js';
import { pruneSnapshots } from '../../src/snapshots/prune.js';
import { FsObjectStore } from '../../src/store/fs/store.js';
import type { ObjectStore } from '../../src/store/types.js';

export interface GcChildJob {
  root: string;
  op: 'gc' | 'prune';
  partitions: string[];
  keep?: number;
  killAt?: number;
}

/** The store, with deletes one key at a time and the kill before the `killAt`-th. */
function killing(inner: ObjectStore, killAt: number | undefined, counter: { deleted: number }): ObjectStore {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'delete') {
        return async (keys: string[]) => {
          for (const key of keys) {
            if (killAt !== undefined && counter.deleted + 1 >= killAt) process.kill(process.pid, 'SIGKILL');
            await target.delete([key]);
            counter.deleted++;
          }
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function main(): Promise<void> {
  // A child is its own entry point: it arms what the test put in its environment.
  armFailpoints(process.env.CAIRN_FAILPOINTS);
  const job = JSON.parse(process.argv[2] ?? '{}') as GcChildJob;
  const counter = { deleted: 0 };
  const store = killing(new FsObjectStore({ root: job.root }), job.killAt, counter);
  if (job.op === 'gc') {
    for (const partition of job.partitions) await collectGarbage(store, partition, { graceMs: 0 });
  } else {
    await pruneSnapshots(store, job.partitions[0]!, job.keep ?? 1);
  }
  process.stdout.write(`${JSON.stringify({ done: { deleted: counter.deleted } })}\n`);
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stdout.write(`${JSON.stringify({ error: { code: e.code ?? null, message: e.message ?? String(err) } })}\n`);
  process.exitCode = 1;
});
