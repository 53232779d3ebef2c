/**
 * A child process for the cross-process race tests (test/snapshots/pointer-race.test.ts),
 * run as `node --import tsx test/helpers/race-child.ts '<json job>'`.
 *
 * It prints `ready`, waits for a line `go` on stdin (so every child starts its race at the
 * same moment), runs the job against a filesystem store rooted where the parent says, and
 * prints one JSON line `{"done": ...}` with what happened.
 *
 * Jobs:
 *   counter     increments one JSON counter object `increments` times with get + put(ifMatch);
 *               a lost update between processes shows up as a final count that is too low.
 *   create      tries to create `keys` with put(ifNoneMatch '*'); reports the ones it won.
 *   checkpoint  checkpoints the given (already staged) captures in order through its own
 *               SnapshotRepository; reports each result.
 *   publish     moves latest.json to one entry with publishPointer (no snapshot folder needed);
 *               with CAIRN_FAILPOINTS it can be paused inside the store's conditional write.
 */
import { armFailpoints } from '../../src/core/failpoints.js';
import { createInterface } from 'node:readline';
import { CairnError } from '../../src/core/errors.js';
import { publishPointer } from '../../src/snapshots/pointer-update.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import type { RetainedEntry } from '../../src/snapshots/schemas.js';
import { captureOf, type Capture, type CapturedFile } from '../../src/state/types.js';
import { FsObjectStore } from '../../src/store/fs/store.js';
import type { ObjectStore } from '../../src/store/types.js';

export type ChildJob =
  | { kind: 'counter'; root: string; key: string; increments: number }
  | { kind: 'create'; root: string; keys: string[]; tag: string }
  | {
      kind: 'checkpoint';
      root: string;
      partition: string;
      retain: number;
      node: string;
      captures: Array<{ dir: string; lsn: number; files: CapturedFile[] }>;
    }
  | { kind: 'publish'; root: string; partition: string; entry: RetainedEntry; retain: number };

async function counter(store: ObjectStore, key: string, increments: number): Promise<{ conflicts: number }> {
  let conflicts = 0;
  for (let i = 0; i < increments; i++) {
    for (;;) {
      let current: { n: number; etag?: string };
      try {
        const { body, etag } = await store.get(key);
        current = { n: (JSON.parse(body.toString()) as { n: number }).n, etag };
      } catch (err) {
        if (!(err instanceof CairnError && err.code === 'NOT_FOUND')) throw err;
        current = { n: 0 };
      }
      try {
        await store.put(key, JSON.stringify({ n: current.n + 1 }), current.etag ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
        break;
      } catch (err) {
        if (!(err instanceof CairnError && err.code === 'CONDITION_FAILED')) throw err;
        conflicts++;
      }
    }
  }
  return { conflicts };
}

async function create(store: ObjectStore, keys: string[], tag: string): Promise<{ won: string[] }> {
  const won: string[] = [];
  for (const key of keys) {
    try {
      await store.put(key, tag, { ifNoneMatch: '*' });
      won.push(key);
    } catch (err) {
      if (!(err instanceof CairnError && err.code === 'CONDITION_FAILED')) throw err;
    }
  }
  return { won };
}

async function checkpoints(store: ObjectStore, job: Extract<ChildJob, { kind: 'checkpoint' }>): Promise<{ results: Array<{ lsn: number; status: string; snapshotId: string; currentLsn?: number }> }> {
  const repo = new SnapshotRepository(store, { retain: job.retain, concurrency: 4 });
  const results = [];
  for (const c of job.captures) {
    const capture: Capture = captureOf({ dir: c.dir, lsn: c.lsn, files: c.files, syncPauseMs: 0, tableHashes: new Map(), release: async () => undefined });
    const r = await repo.checkpoint(capture, { partition: job.partition, node: job.node, source: `embedded:${job.partition}` });
    results.push({ lsn: c.lsn, status: r.status, snapshotId: r.metadata.snapshotId, ...(r.status === 'superseded' ? { currentLsn: r.currentLsn } : {}) });
  }
  return { results };
}

async function main(): Promise<void> {
  // A child is its own entry point: it arms what the test put in its environment.
  armFailpoints(process.env.CAIRN_FAILPOINTS);
  const job = JSON.parse(process.argv[2] ?? '{}') as ChildJob;
  const store = new FsObjectStore({ root: job.root });
  const lines = createInterface({ input: process.stdin });
  const go = new Promise<void>((resolve) => lines.on('line', (l) => l.trim() === 'go' && resolve()));
  process.stdout.write('ready\n');
  await go;
  lines.close();
  let done: unknown;
  if (job.kind === 'counter') done = await counter(store, job.key, job.increments);
  else if (job.kind === 'create') done = await create(store, job.keys, job.tag);
  else if (job.kind === 'publish') done = { status: (await publishPointer(store, job.partition, job.entry, { retain: job.retain })).status };
  else done = await checkpoints(store, job);
  process.stdout.write(`${JSON.stringify({ done })}\n`);
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stdout.write(`${JSON.stringify({ error: { code: e.code ?? null, message: e.message ?? String(err) } })}\n`);
  process.exitCode = 1;
});
