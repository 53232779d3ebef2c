import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, tempDir } from '../helpers/cli.js';
import { writeConfig } from '../helpers/runtime-harness.js';

/**
 * `fork create` and `fork drop` killed with SIGKILL after each of their steps (failpoints),
 * while the parent keeps checkpointing and is pruned. The store is read directly here, with
 * none of the code under test: at every moment no fork exists without its pin, prune never
 * removes a file a live fork needs, and re-running the interrupted command leaves no pin
 * without its fork.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');
const CREATE_STEPS = ['fork-create:pinned', 'fork-create:parent-touched', 'fork-create:metadata', 'fork-create:published'];
const DROP_STEPS = ['fork-drop:unpublished', 'fork-drop:folders', 'fork-drop:done'];

interface StoreView {
  forks: Array<{ fork: string; parent: string; needsPin: boolean; files: string[] }>;
  pins: Array<{ parent: string; fork: string; snapshots: string[] }>;
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

/** Forks, their pins and the keys they need, straight from the filesystem store. */
function view(root: string): StoreView {
  const forks: StoreView['forks'] = [];
  const pins: StoreView['pins'] = [];
  const metaOf = (path: string): { partition: string; parent?: { partition: string }; fork?: unknown; inherits?: { path: string }; files: Array<{ key: string }> } => {
    const m = readJson(join(root, path, 'metadata.json'));
    return m.inherits && m.files.length === 0 ? { ...m, files: metaOf(m.inherits.path).files } : m;
  };
  for (const partition of readdirSync(root)) {
    const pinDir = join(root, partition, 'pins');
    if (existsSync(pinDir)) for (const f of readdirSync(pinDir)) pins.push({ parent: partition, ...readJson(join(pinDir, f)) });
    if (!existsSync(join(root, partition, 'latest.json'))) continue;
    const latest = readJson(join(root, partition, 'latest.json'));
    const meta = metaOf(latest.path);
    if (!meta.fork) continue;
    const retained = latest.retained.map((e: { path: string }) => metaOf(e.path));
    const files = retained.flatMap((m: { files: Array<{ key: string }> }) => m.files.map((f) => f.key));
    forks.push({ fork: partition, parent: meta.parent!.partition, needsPin: files.some((k: string) => !k.startsWith(`${partition}/`)), files });
  }
  return { forks, pins };
}

function expectNoForkWithoutPin(root: string, when: string): void {
  const v = view(root);
  for (const f of v.forks) {
    if (f.needsPin) expect(v.pins.some((p) => p.parent === f.parent && p.fork === f.fork), `${when}: fork ${f.fork} without its pin`).toBe(true);
    for (const key of f.files) expect(existsSync(join(root, key)), `${when}: ${key}, needed by fork ${f.fork}, is gone`).toBe(true);
  }
}

function expectNoPinWithoutFork(root: string, when: string): void {
  const v = view(root);
  for (const p of v.pins) expect(v.forks.some((f) => f.fork === p.fork), `${when}: pin ${p.parent}/pins/${p.fork}.json without a fork`).toBe(true);
}

describe('fork create and drop under SIGKILL', () => {
  it('never leave a fork without its pin; a re-run leaves no pin without its fork; prune keeps what forks need', async () => {
    const cwd = tempDir('cairn-fork-crash-');
    writeConfig(cwd, { snapshots: { everyRecords: 400, retain: 2, concurrency: 4 } });
    const root = join(cwd, '.cairn', 'store');
    const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { cwd, env });
    let seed = 1;
    /** The parent moves on: new events, new snapshots, old ones evicted unless pinned. */
    const advance = async () => {
      const r = await runCli(['log', 'append', '--partition', 'p0', '--jsonl', '-'], { cwd, input: toJsonl(bankEvents(900, seed++)) });
      expect(r.code, r.stderr).toBe(0);
      const run = await cli(['run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end', '--checkpoint-on-exit']);
      expect(run.code, run.stderr).toBe(0);
    };
    const pruneAndCheck = async (when: string) => {
      const pruned = await cli(['prune', '--partition', 'p0', '--keep', '1']);
      expect(pruned.code, pruned.stderr).toBe(0);
      expectNoForkWithoutPin(root, `${when}, after prune`);
    };
    await advance();

    for (const [i, step] of CREATE_STEPS.entries()) {
      const name = `c${i}`;
      const killed = await cli(['fork', 'create', '--from', 'p0', '--name', name], { CAIRN_FAILPOINTS: step });
      expect(killed.signal, `${step}: ${killed.stderr}`).toBe('SIGKILL');
      // It did stop where it was told: the pin is there, the fork only once published.
      const after = view(root);
      expect(after.pins.some((p) => p.fork === name)).toBe(true);
      expect(after.forks.some((f) => f.fork === name)).toBe(step === 'fork-create:published');
      expectNoForkWithoutPin(root, `killed at ${step}`);
      await advance();
      await pruneAndCheck(`killed at ${step}`);
      const rerun = await cli(['fork', 'create', '--from', 'p0', '--name', name]);
      // Killed after publishing: the fork exists, and the re-run says so.
      expect(rerun.code, rerun.stderr).toBe(step === 'fork-create:published' ? 2 : 0);
      expectNoForkWithoutPin(root, `re-run after ${step}`);
      expectNoPinWithoutFork(root, `re-run after ${step}`);
      expect((await cli(['verify', '--partition', name])).code).toBe(0);
    }

    for (const [i, step] of DROP_STEPS.entries()) {
      const name = `d${i}`;
      expect((await cli(['fork', 'create', '--from', 'p0', '--name', name])).code).toBe(0);
      const killed = await cli(['fork', 'drop', name], { CAIRN_FAILPOINTS: step });
      expect(killed.signal, `${step}: ${killed.stderr}`).toBe('SIGKILL');
      const after = view(root);
      expect(after.forks.some((f) => f.fork === name)).toBe(false);
      expect(after.pins.some((p) => p.fork === name)).toBe(step !== 'fork-drop:done');
      expectNoForkWithoutPin(root, `killed at ${step}`);
      await pruneAndCheck(`killed at ${step}`);
      const rerun = await cli(['fork', 'drop', name]);
      // Killed after the last step there is nothing left to drop.
      expect(rerun.code, rerun.stderr).toBe(step === 'fork-drop:done' ? 1 : 0);
      expectNoPinWithoutFork(root, `re-run after ${step}`);
      expect(existsSync(join(root, name))).toBe(false);
    }

    // The forks that survived are whole, and the parent still serves a fresh node.
    const listed = JSON.parse((await cli(['--json', 'fork', 'list'])).stdout).forks;
    expect(listed.map((f: { fork: string }) => f.fork).sort()).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(listed.every((f: { status: string }) => f.status === 'ok')).toBe(true);
  });
});
