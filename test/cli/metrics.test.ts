import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.js';

it('cairn run --metrics-port serves Prometheus metrics while running and stops cleanly on SIGTERM', async () => {
  const cwd = tempDir();
  writeFileSync(join(cwd, 'events.jsonl'), toJsonl(bankEvents(500, 3)));
  expect((await runCli(['log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl'], { cwd })).code).toBe(0);

  const child = spawnCli(['run', '--partition', 'p0', '--processor', join(REPO_ROOT, 'examples/bank/processor.ts'), '--metrics-port', '0', '--snapshot-every', '100'], {
    cwd,
    env: { CAIRN_LOG_LEVEL: 'info' },
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.on('exit', () => reject(new Error(`exited early: ${stderr}`)));
  });
  // Wait until all 500 records are applied and a snapshot published, as the metrics report.
  let text = '';
  const ready = (t: string) => /cairn_applied_lsn\{partition="p0"\} 499/.test(t) && /status="published"/.test(t);
  for (let i = 0; i < 100 && !ready(text); i++) {
    text = await (await fetch(url)).text();
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(text).toMatch(/cairn_records_applied_total\{partition="p0"\} 500/);
  expect(text).toMatch(/cairn_snapshots_total\{partition="p0",status="published"\} [1-9]/);
  expect(text).toMatch(/cairn_store_/);
  expect((await fetch(url.replace('/metrics', '/other'))).status).toBe(404);

  // The same endpoint: health, readiness, and live queries of the partition it runs.
  const base = url.replace('/metrics', '');
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect(await (await fetch(`${base}/readyz`)).json()).toMatchObject({ ready: true, partitions: ['p0'] });
  const live = await runCli(['--json', 'state', 'get', '--partition', 'p0', 'account/acct-0007', '--worker', base], { cwd });
  expect(live.code, live.stderr).toBe(0);
  const answer = JSON.parse(live.stdout) as { value: { count: number }; lsn: number };
  expect(answer).toMatchObject({ partition: 'p0', key: 'account/acct-0007', lsn: 499 });
  expect(answer.value.count).toBeGreaterThan(0);
  const notHere = await runCli(['state', 'get', '--partition', 'p1', 'account/acct-0007', '--worker', base], { cwd });
  expect(notHere.code).toBe(1);
  expect(notHere.stderr).toMatch(/partition p1 is not running on this worker .*\[NOT_FOUND\]/);
  const missing = await fetch(`${base}/v1/partitions/p0/state/${encodeURIComponent('no/such key')}`);
  expect(missing.status).toBe(404);
  expect((await fetch(`${base}/v1/partitions/..%2Fx/state/k`)).status).toBe(400);

  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  expect(await exit).toBe(0);
  // Stopped, the folder gives the same answer.
  const offline = await runCli(['--json', 'state', 'get', '--partition', 'p0', 'account/acct-0007'], { cwd });
  expect(JSON.parse(offline.stdout)).toEqual(answer);
  const dump = await runCli(['state', 'dump', '--partition', 'p0'], { cwd });
  expect(JSON.parse(dump.stdout.split('\n')[0]!)).toEqual({ lsn: 499 });
});
