import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { toJsonl } from '../helpers/bank-model.js';
import { CLI_ENTRY, REPO_ROOT, TSX_LOADER, jsonOf, runCli, tempDir, type CliResult } from '../helpers/cli.js';

/**
 * What the CLI leaves behind and what it says: no staged checkpoints, no folders created by
 * read-only commands, a quiet exit when its reader goes away, a load error that says where,
 * and a diff that says when its two sides are at different LSNs.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');

function expectOneLine(r: CliResult, code: string): void {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^cairn: error: .*\\[${code}\\]$`));
}

describe('a project with two snapshots at different LSNs', () => {
  const cwd = tempDir('cairn-hygiene-');
  const cli = (...args: string[]) => runCli(args, { cwd });
  const ids: string[] = [];

  beforeAll(async () => {
    writeFileSync(join(cwd, 'events.jsonl'), toJsonl(bankEvents(300, 5)));
    expect((await cli('log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl')).code).toBe(0);
    const first = jsonOf(await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--until-lsn', '149', '--checkpoint-on-exit'));
    ids.push(first.snapshots[0].metadata.snapshotId);
    expect((await cli('run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end')).code).toBe(0);
  });

  it('cairn checkpoint leaves no staged checkpoint behind', async () => {
    const r = jsonOf(await cli('--json', 'checkpoint', '--partition', 'p0'));
    expect(r).toMatchObject({ status: 'published', lsn: 299 });
    ids.push(r.snapshotId);
    const staging = join(cwd, '.cairn/state/.staging');
    expect(existsSync(staging) ? readdirSync(staging) : []).toEqual([]);
    expect(existsSync(join(cwd, '.cairn/state/p0/.cairn-linked'))).toBe(false);
  });

  it('cairn diff says when its sides are at different LSNs (text and --json)', async () => {
    const apart = jsonOf(await cli('--json', 'diff', `p0@${ids[0]}`, `p0@${ids[1]}`));
    expect(apart.lsns).toEqual({ a: 149, b: 299, same: false });
    expect(apart.warning).toMatch(/LSN 149.*LSN 299/);
    const text = await cli('diff', `p0@${ids[0]}`, `p0@${ids[1]}`);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split('\n')[0]).toMatch(/^warning: different LSNs: .*149.*299/);

    const same = jsonOf(await cli('--json', 'diff', 'p0', `p0@${ids[1]}`));
    expect(same).toMatchObject({ lsns: { a: 299, b: 299, same: true }, changed: 0, added: 0, removed: 0 });
    expect(same.warning).toBeUndefined();
  });

  it('read-only commands create no state folder, even where snapshots exist', async () => {
    rmSync(join(cwd, '.cairn/state'), { recursive: true, force: true });
    expect(jsonOf(await cli('--json', 'snapshots', 'list', '--partition', 'p0')).snapshots.length).toBeGreaterThan(0);
    expect(jsonOf(await cli('--json', 'verify', '--partition', 'p0'))).toMatchObject({ ok: true });
    const dump = await cli('state', 'dump', '--partition', 'p0');
    expect(dump.code).toBe(1);
    expectOneLine(dump, 'NOT_FOUND');
    expect(dump.stderr).toMatch(/partition p0/);
    expect(existsSync(join(cwd, '.cairn/state'))).toBe(false);
    expect(readdirSync(join(cwd, '.cairn')).sort()).toEqual(['log', 'store']);
  });
});

it('read-only commands on a fresh folder create nothing', async () => {
  const cwd = tempDir('cairn-readonly-');
  const expected: Array<[string[], number, string | undefined]> = [
    [['snapshots', 'list', '--partition', 'p0'], 0, undefined],
    [['state', 'dump', '--partition', 'p0'], 1, 'NOT_FOUND'],
    [['verify', '--partition', 'p0'], 1, 'NO_SNAPSHOT'],
  ];
  for (const [args, code, error] of expected) {
    const r = await runCli(args, { cwd });
    expect(r.code, r.stderr).toBe(code);
    if (error) expectOneLine(r, error);
    expect(readdirSync(cwd), args.join(' ')).toEqual([]);
  }
});

it('`cairn state dump | head -1` exits 0 without a word on stderr', async () => {
  const dir = join(tempDir('cairn-epipe-'), 'state');
  const state = await PartitionState.open(dir, { partition: 'p0' });
  // Far more than a pipe buffers (64 KiB), so cairn is still writing when head exits.
  const writes = new Map<string, unknown>();
  for (let i = 0; i < 20_000; i++) writes.set(`key-${String(i).padStart(6, '0')}`, { i, pad: 'x'.repeat(100) });
  await state.commit(writes, 41);
  await state.close();
  const script = `set -o pipefail; "${process.execPath}" --import "${TSX_LOADER}" "${CLI_ENTRY}" state dump --state-dir "${dir}" | head -1`;
  const r = await new Promise<CliResult>((resolve) => {
    const child = spawn('bash', ['-c', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('{"lsn":41}\n');
});

describe('a processor module that fails to load says where', () => {
  const cwd = tempDir('cairn-bad-module-');
  writeFileSync(join(cwd, 'syntax.mjs'), 'export default {\n  name: "bad",\n  apply(record, state) { state.put(record.key, ) +* }\n};\n');
  writeFileSync(join(cwd, 'throws.mjs'), 'const limit = 3;\nif (limit > 2) throw new Error("no config for this processor");\nexport default { name: "x", apply() {} };\n');

  it.each([
    ['syntax.mjs', 3, 51, /SyntaxError: Unexpected token/],
    ['throws.mjs', 2, 22, /Error: no config for this processor/],
  ])('%s: file:line:col in the one-line error and in --json', async (file, line, column, message) => {
    const path = join(cwd, file);
    const r = await runCli(['run', '--partition', 'p0', '--processor', file, '--stop-at-end'], { cwd });
    expect(r.code).toBe(2);
    expectOneLine(r, 'BAD_INPUT');
    expect(r.stderr).toContain(`${path}:${line}:${column}`);
    expect(r.stderr).toMatch(message);

    const j = await runCli(['--json', 'run', '--partition', 'p0', '--processor', file], { cwd });
    expect(j.code).toBe(2);
    const { error } = JSON.parse(j.stdout);
    expect(error.message).toContain(`${path}:${line}:${column}`);
    expect(error.details.location).toEqual({ file: path, line, column });
    expect(readdirSync(cwd).sort()).toEqual(['syntax.mjs', 'throws.mjs']);
  });
});
