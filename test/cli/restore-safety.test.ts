import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { processStartTime } from '../../src/core/process-identity.js';
import type { AppendRecord } from '../../src/log/types.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { bankModel, parseDump, toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, jsonOf, runCli, startCliWorker, tempDir, type BackgroundCli } from '../helpers/cli.js';
import { expectCode } from '../helpers/fixtures.js';

/**
 * `cairn restore --to DIR` replaces DIR only when that cannot surprise anyone: a missing or
 * empty folder; or, with --force, the partition's own stopped state folder. A folder of
 * anything else is refused untouched (exit 2), and a folder a running processor holds is
 * refused even with --force (exit 1). Every case runs the real CLI on the embedded default.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');

async function project(partitions: Record<string, AppendRecord[]>) {
  const cwd = tempDir('cairn-restore-safety-');
  const cli = (...args: string[]) => runCli(args, { cwd });
  for (const [p, events] of Object.entries(partitions)) {
    writeFileSync(join(cwd, `${p}.jsonl`), toJsonl(events));
    expect((await cli('log', 'append', '--partition', p, '--jsonl', `${p}.jsonl`)).code).toBe(0);
  }
  return { cwd, cli };
}

function expectOneLine(r: { stderr: string }, code: string) {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^cairn: error: .*\\[${code}\\]$`));
}

/** Every file under `dir` with its bytes, to prove a refused restore changed nothing. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name).slice(dir.length)] = readFileSync(join(e.parentPath, e.name)).toString('base64');
  }
  return out;
}

let worker: BackgroundCli | undefined;
afterEach(async () => {
  await worker?.stop('SIGKILL');
  worker = undefined;
});

describe('cairn restore --to DIR never destroys by surprise', () => {
  it('refuses a folder of user files, the project folder itself, a file and another partition\'s state: exit 2, nothing touched', async () => {
    const events = { p0: bankEvents(300, 1), p1: bankEvents(200, 2) };
    const { cwd, cli } = await project(events);
    expect((await cli('run', '--partition', 'p0', '--partition', 'p1', '--processor', PROCESSOR, '--stop-at-end', '--checkpoint-on-exit')).code).toBe(0);
    mkdirSync(join(cwd, 'proj'));
    writeFileSync(join(cwd, 'proj', 'notes.txt'), 'my notes\n');
    writeFileSync(join(cwd, 'a-file'), 'x');
    const before = tree(cwd);

    // --force never widens what may be replaced to anything but the partition's own state.
    for (const [to, force] of [['proj', []], ['.', ['--force']], ['a-file', []], ['.cairn/state/p1', ['--force']]] as const) {
      const r = await cli('restore', '--partition', 'p0', '--to', to, ...force);
      expect(r.code, `${to} ${force.join(' ')}: ${r.stderr}`).toBe(2);
      expectOneLine(r, 'BAD_INPUT');
      if (to === '.cairn/state/p1') expect(r.stderr).toMatch(/partition p1/);
    }
    expect(readFileSync(join(cwd, 'proj', 'notes.txt'), 'utf8')).toBe('my notes\n');
    // Byte for byte: p1's state folder, the log and the store included.
    expect(tree(cwd)).toEqual(before);

    // A missing or an empty folder is restored into as before.
    mkdirSync(join(cwd, 'empty'));
    for (const to of ['empty', 'new/deeper']) expect(jsonOf(await cli('--json', 'restore', '--partition', 'p0', '--to', to))).toMatchObject({ lsn: 299 });
    expect(parseDump((await cli('state', 'dump', '--state-dir', 'empty')).stdout).entries).toEqual(bankModel(events.p0));
  });

  it("replaces the partition's stopped state folder only with --force", async () => {
    const events = bankEvents(300, 3);
    const { cli } = await project({ p0: events });
    const older = jsonOf(await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--until-lsn', '149', '--checkpoint-on-exit'));
    expect((await cli('run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end', '--checkpoint-on-exit')).code).toBe(0);
    const id = older.snapshots[0].metadata.snapshotId as string;

    const refused = await cli('restore', '--partition', 'p0', '--snapshot', id, '--to', '.cairn/state/p0');
    expect(refused.code).toBe(2);
    expectOneLine(refused, 'BAD_INPUT');
    expect(refused.stderr).toMatch(/--force/);
    expect(parseDump((await cli('state', 'dump', '--partition', 'p0')).stdout).lsn).toBe(299);

    expect(jsonOf(await cli('--json', 'restore', '--partition', 'p0', '--snapshot', id, '--to', '.cairn/state/p0', '--force'))).toMatchObject({ lsn: 149, snapshotId: id });
    const dump = parseDump((await cli('state', 'dump', '--partition', 'p0')).stdout);
    expect(dump.lsn).toBe(149);
    expect(dump.entries).toEqual(bankModel(events, 149));
    // The replaced folder is still the partition's: a worker resumes from it.
    expect(jsonOf(await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end'))).toMatchObject({ start: { source: 'local', lsn: 149 }, appliedLsn: 299 });
  });

  it('refuses a state folder a running `cairn run` holds (exit 1, even with --force); the worker\'s next snapshot holds what its name says', async () => {
    const events = bankEvents(2000, 4);
    const { cwd, cli } = await project({ p0: events });
    const first = jsonOf(await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--until-lsn', '999', '--snapshot-every', '0', '--checkpoint-on-exit'));
    const older = first.snapshots[0].metadata.snapshotId as string;

    worker = await startCliWorker(['--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--snapshot-every', '0', '--checkpoint-on-exit'], { cwd });
    await worker.waitForApplied('p0', 1999);

    for (const force of [[], ['--force']]) {
      const r = await cli('restore', '--partition', 'p0', '--snapshot', older, '--to', '.cairn/state/p0', ...force);
      expect(r.code, r.stderr).toBe(1);
      expectOneLine(r, 'STATE_UNAVAILABLE');
    }
    expect(readdirSync(join(cwd, '.cairn/state')).filter((n) => n.includes('.restore-') || n.includes('.old-') || n.includes('.peek-'))).toEqual([]);

    // The worker carries on; its snapshot on exit is named LSN 1999 and holds exactly that.
    const stopped = await worker.stop('SIGTERM');
    expect(stopped.code, stopped.stderr).toBe(0);
    const summary = JSON.parse(stopped.stdout);
    expect(summary.snapshots.map((s: { status: string; metadata: { lsn: number } }) => [s.status, s.metadata.lsn])).toEqual([['published', 1999]]);
    expect((await cli('verify', '--partition', 'p0')).code).toBe(0);
    const restored = jsonOf(await cli('--json', 'restore', '--partition', 'p0', '--to', 'check'));
    expect(restored).toMatchObject({ lsn: 1999, fellBackFrom: [] });
    const dump = parseDump((await cli('state', 'dump', '--state-dir', 'check')).stdout);
    expect(dump.lsn).toBe(1999);
    expect(dump.entries).toEqual(bankModel(events, 1999));
  });
});

describe('a processor does not open a state folder another process is restoring into', () => {
  it('refuses STATE_UNAVAILABLE while the restore\'s owner runs, and opens once it is gone', async () => {
    const root = tempDir('cairn-restore-race-');
    const dir = join(root, 'state', 'p0');
    const state = await PartitionState.open(dir, { partition: 'p0' });
    await state.close();
    // A restore work folder as another process's restore names it (restore-workdir.ts).
    const other = spawn('sleep', ['60']);
    try {
      const start = processStartTime(other.pid!);
      const work = join(root, 'state', `.p0.restore-${other.pid}-${start ?? 0}-0badc0de`);
      await mkdir(work);
      const err = await expectCode(() => PartitionState.open(dir, { create: false, partition: 'p0' }), 'STATE_UNAVAILABLE');
      expect(err.message).toMatch(new RegExp(`pid ${other.pid}`));
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
      const reopened = await PartitionState.open(dir, { create: false, partition: 'p0' });
      await reopened.close();
    } finally {
      other.kill('SIGKILL');
      await rm(root, { recursive: true, force: true });
    }
    expect(existsSync(root)).toBe(false);
  });
});
