import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { expect } from 'vitest';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Tests run the CLI from source through tsx so they never test a stale build. */
export const CLI_ENTRY = join(REPO_ROOT, 'src/cli/main.ts');
/** tsx's loader by absolute URL: children run in temp folders where a bare 'tsx' would not resolve. */
export const TSX_LOADER = pathToFileURL(join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function spawnCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, CAIRN_LOG_LEVEL: process.env.CAIRN_LOG_LEVEL ?? 'warn', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, options);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin!.end(options.input ?? '');
  });
}

/** Asserts a `--json` command succeeded (its stderr explains a failure) and returns its document. */
export function jsonOf(r: CliResult): any {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

export function tempDir(prefix = 'cairn-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface BackgroundCli {
  child: ChildProcess;
  /** The worker's Prometheus endpoint (it runs with --metrics-port 0). */
  metricsUrl: string;
  /** Resolves once the worker reports `lsn` applied for `partition` (cairn_applied_lsn). */
  waitForApplied(partition: string, lsn: number, timeoutMs?: number): Promise<void>;
  /** Sends `signal` and resolves with how the process ended and everything it printed. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

/**
 * `cairn run ARGS --metrics-port 0` in the background, resolved once it serves metrics:
 * tests that act on a running worker wait on what it reports, not on a guess of its speed.
 */
export async function startCliWorker(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<BackgroundCli> {
  const child = spawnCli([...args, '--metrics-port', '0'], { cwd: options.cwd, env: { CAIRN_LOG_LEVEL: 'info', ...options.env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const closed = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const metricsUrl = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)"/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void closed.then(() => reject(new Error(`worker exited before serving metrics: ${stderr}`)));
  });
  return {
    child,
    metricsUrl,
    async waitForApplied(partition, lsn, timeoutMs = 60_000) {
      const pattern = new RegExp(`cairn_applied_lsn\\{partition="${partition}"\\} (\\d+)`);
      for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
        const m = pattern.exec(await (await fetch(metricsUrl)).text());
        if (m && Number(m[1]) >= lsn) return;
      }
      throw new Error(`worker did not reach LSN ${lsn} of ${partition} within ${timeoutMs} ms: ${stderr}`);
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return closed;
    },
  };
}
