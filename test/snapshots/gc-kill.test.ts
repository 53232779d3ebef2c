import { spawn } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFork } from '../../src/forks/fork.js';
import { pruneSnapshots } from '../../src/snapshots/prune.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import type { ObjectStore } from '../../src/store/types.js';
import { churnRig, loadRig, type ChurnRig } from '../helpers/churn-rig.js';
import { REPO_ROOT, TSX_LOADER } from '../helpers/cli.js';
import type { GcChildJob } from '../helpers/gc-child.js';
import { seededRandom } from '../helpers/runtime-harness.js';
import { dumpState, fsStore, removeDir, sortedEntries, tempDir } from '../helpers/snapshot-fixtures.js';
import { missingFiles, rawPins, rawPointer, readableRoots, snapshotObjects, unreferencedObjects } from '../helpers/snapshot-references.js';

/**
 * The collector and prune killed with SIGKILL at every kind of moment. The world, on the
 * filesystem store, in snapshots.sharing "shared": partition p0 with retained snapshots,
 * evicted ones still within their grace, evicted folders whose tables newer snapshots
 * share, tables nothing references any more, an interrupted upload; and a fork f1 pinning
 * one of p0's snapshots, whose own snapshots reference p0's tables.
 *
 * A child process (helpers/gc-child.ts) runs `collectGarbage` (p0, then f1) or prune
 * (keep 1) on a copy of that store and SIGKILLs itself just before deleting its N-th object,
 * for N from the first to the last object the operation deletes. After every kill: both
 * pointers are readable, every retained, evicted and pinned snapshot of p0 and f1 has all its
 * files and restores to exactly its model; then the interrupted operation and a complete
 * collection finish, leave no object that no readable snapshot references, and every such
 * snapshot still restores.
 */

const P = 'p0';
const F = 'f1';
const CHILD = join(REPO_ROOT, 'test/helpers/gc-child.ts');
const SEED = Number(process.env.CAIRN_GC_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));

interface World {
  dir: string;
  /** The pristine store folder every trial starts from. */
  storeRoot: string;
  /** Per partition, the model at every LSN a snapshot was published at. */
  models: Map<string, Map<number, Map<string, unknown>>>;
}

let world: World;

const repo = (store: ObjectStore, retain: number, evictionGraceMs: number) => new SnapshotRepository(store, { retain, concurrency: 4, evictionGraceMs, sharing: 'shared' });

async function buildWorld(): Promise<World> {
  const dir = await tempDir('gc-kill');
  const store = fsStore(dir, { retry: false });
  const rigs: ChurnRig[] = [];
  try {
    const p0 = await churnRig(P);
    rigs.push(p0);
    await loadRig(p0, 3000);
    const noGrace = repo(store, 2, 0);
    // Era 1: churn, an overwrite and a compaction; evicted folders keep what is shared.
    for (let round = 0; round < 5; round++) {
      await p0.churn(round);
      if (round === 2) await p0.overwrite(0, 300, 'o2');
      if (round === 3) await p0.state.compactAll();
      expect((await p0.checkpoint(noGrace)).status).toBe('published');
    }
    // A fork of the older retained snapshot; its checkpoints reference p0's tables.
    const pinned = (await rawPointer(store, P))!.retained[1]!;
    await createFork(store, { from: P, at: { kind: 'snapshot', snapshotId: pinned.snapshotId }, name: F, node: 'n1' });
    const forkDir = join(dir, 'fork-state', F);
    await noGrace.restore({ partition: F, targetDir: forkDir });
    const f1 = await churnRig(F, { dir: forkDir });
    rigs.push(f1);
    f1.model = new Map(p0.at.get(pinned.lsn)!);
    f1.at.set(pinned.lsn, new Map(f1.model));
    await f1.churn(100);
    expect((await f1.checkpoint(noGrace)).metadata.stats.referencedBytes).toBeGreaterThan(0);
    await f1.overwrite(1000, 200, 'f');
    await f1.churn(101);
    expect((await f1.checkpoint(noGrace)).status).toBe('published');
    // Era 2: a compaction, evictions swept at once (their tables shared onwards), then
    // evictions that wait out an hour's grace.
    await p0.churn(5);
    await p0.state.compactAll();
    await p0.checkpoint(noGrace);
    for (const round of [6, 7]) {
      await p0.churn(round);
      await p0.checkpoint(noGrace);
    }
    const longGrace = repo(store, 2, 3_600_000);
    await p0.churn(8);
    await p0.checkpoint(longGrace);
    await p0.overwrite(2000, 300, 'o9');
    await p0.churn(9);
    await p0.checkpoint(longGrace);
    // An upload interrupted long ago: a folder without metadata.json.
    const junk = `${P}/${monotonicFactory()(Date.now() - 7_200_000)}_99999`;
    for (const name of ['000001.ldb', '000002.ldb', 'MANIFEST-000001']) await store.put(`${junk}/${name}`, `interrupted ${name}`);

    // The world is what the test is about: check it has every ingredient.
    const pointer = (await rawPointer(store, P))!;
    expect(pointer.evicted?.length).toBe(2);
    expect((await rawPins(store, P)).map((p) => p.snapshots)).toEqual([[pinned.path]]);
    expect(pointer.retained.map((e) => e.path)).toContain(pinned.path);
    const roots = new Set(await readableRoots(store, P));
    const objects = [...(await snapshotObjects(store, P)).keys()];
    const inOtherFolders = objects.filter((k) => !roots.has(k.split('/').slice(0, 2).join('/')));
    const garbage = new Set(await unreferencedObjects(store, P));
    expect(inOtherFolders.some((k) => !garbage.has(k))).toBe(true); // evicted folders holding shared tables
    expect(inOtherFolders.filter((k) => garbage.has(k) && !k.startsWith(junk)).length).toBeGreaterThan(2);
    expect(await missingFiles(store, [...roots, ...(await readableRoots(store, F))])).toEqual([]);
    return { dir, storeRoot: join(dir, 'store'), models: new Map([[P, p0.at], [F, f1.at]]) };
  } finally {
    for (const r of rigs) {
      await r.close();
      await removeDir(r.root);
    }
    await store.close();
  }
}

function runChild(job: GcChildJob): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, CHILD, JSON.stringify(job)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Every readable snapshot of p0 and f1 is whole and restores to its model. */
async function expectReadableWhole(store: ObjectStore, when: string): Promise<void> {
  const r = repo(store, 2, 0);
  for (const partition of [P, F]) {
    const pointer = await rawPointer(store, partition);
    expect(pointer, `${when}: ${partition}/latest.json`).toBeDefined();
    const roots = await readableRoots(store, partition);
    expect(await missingFiles(store, roots), `${when}: files of ${partition}'s readable snapshots`).toEqual([]);
    const listed = [...pointer!.retained, ...(pointer!.evicted ?? [])];
    for (const path of roots) {
      const entry = listed.find((e) => e.path === path) ?? { snapshotId: path.split('/')[1]!.split('_')[0]!, lsn: Number(path.split('_')[1]) };
      const target = join(world.dir, 'restore', partition);
      const restored = await r.restore({ partition, targetDir: target, snapshotId: entry.snapshotId });
      expect(restored.skipped).toEqual([]);
      const dump = await dumpState(target);
      expect(dump.lsn, `${when}: ${path}`).toBe(entry.lsn);
      expect(dump.entries, `${when}: ${path}`).toEqual(sortedEntries(world.models.get(partition)!.get(entry.lsn)!));
    }
  }
  await removeDir(join(world.dir, 'restore'));
}

/** A trial: a fresh copy of the world, the child killed at `killAt` (or not), then the checks. */
async function trial(op: GcChildJob['op'], killAt: number | undefined): Promise<number> {
  const trialDir = await tempDir('gc-kill-trial');
  cpSync(world.storeRoot, join(trialDir, 'store'), { recursive: true });
  const store = fsStore(trialDir, { retry: false });
  const when = `${op} killed before object ${killAt ?? 'never'} (seed ${SEED})`;
  try {
    const before = (await rawPointer(store, P))!;
    const run = await runChild({ root: join(trialDir, 'store'), op, partitions: [P, F], keep: 1, ...(killAt !== undefined ? { killAt } : {}) });
    let deleted = 0;
    if (killAt === undefined) {
      expect(run.code, `${when}: ${run.stdout}${run.stderr}`).toBe(0);
      deleted = (JSON.parse(run.stdout.trim()) as { done: { deleted: number } }).done.deleted;
    } else {
      expect(run.signal, `${when}: ${run.stdout}${run.stderr}`).toBe('SIGKILL');
    }
    // Never the latest; prune may have moved evicted entries out, nothing else changes.
    expect((await rawPointer(store, P))!.path).toBe(before.path);
    await expectReadableWhole(store, when);

    // The interrupted work finishes: prune again, then a complete collection of both.
    if (op === 'prune') await pruneSnapshots(store, P, 1);
    const r = repo(store, 2, 0);
    for (const partition of [P, F]) await r.collectGarbage(partition, { graceMs: 0 });
    expect(await unreferencedObjects(store, P), when).toEqual([]);
    expect(await unreferencedObjects(store, F), when).toEqual([]);
    await expectReadableWhole(store, `${when}, then completed`);
    return deleted;
  } finally {
    await store.close();
    await removeDir(trialDir);
  }
}

/** Before every object when there are few; else the first and last few, a spread and seeded ones. */
function killPoints(total: number): number[] {
  if (total <= 20) return Array.from({ length: total }, (_, i) => i + 1);
  const rand = seededRandom(SEED);
  const points = new Set([1, 2, 3, Math.ceil(total / 3), Math.ceil(total / 2), Math.ceil((2 * total) / 3), total - 1, total]);
  for (let i = 0; i < 3; i++) points.add(1 + Math.floor(rand() * total));
  return [...points].filter((n) => n >= 1 && n <= total).sort((a, b) => a - b);
}

describe('the collector and prune under SIGKILL (shared snapshots, a fork pinning one)', () => {
  beforeAll(async () => {
    world = await buildWorld();
  });
  afterAll(async () => {
    await removeDir(world?.dir);
  });

  for (const op of ['gc', 'prune'] as const) {
    it(`${op}: killed before any of the objects it deletes, every readable snapshot restores and a complete collection follows`, { timeout: 180_000 }, async () => {
      const total = await trial(op, undefined);
      expect(total).toBeGreaterThan(5);
      const points = killPoints(total);
      console.log(`[gc-kill] ${op}: ${total} objects deleted when not killed; killed before object ${points.join(', ')} (seed ${SEED})`);
      for (const n of points) await trial(op, n);
    });
  }
});
