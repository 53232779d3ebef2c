import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

/**
 * Starts the real services integration tests need (MinIO) once per `vitest run`.
 *
 * The environment reaches test workers two ways: process.env here (forked workers inherit
 * the parent's environment, which is what child processes spawned by tests also need),
 * and vitest's provide/inject, which is the documented channel and also carries the
 * failure reason. Tests read it through test/helpers/s3.ts.
 *
 * Missing services are never a silent skip: with CI=true start-up failure fails the run;
 * otherwise the S3 tests fail with "MinIO not available: <reason>".
 */
export interface ServiceStatus {
  ok: boolean;
  env: Record<string, string>;
  reason?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    minio: ServiceStatus;
  }
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MINIO_SCRIPT = resolve(ROOT, 'test/services/minio.sh');

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const minio = await startService(MINIO_SCRIPT);
  if (minio.ok) {
    Object.assign(process.env, minio.env);
  } else {
    const message = `MinIO not available: ${minio.reason}`;
    // Read by test/helpers/backends.ts (and by any child process a test spawns).
    process.env.CAIRN_MINIO_ERROR = minio.reason ?? 'unknown';
    if (process.env.CI === 'true') throw new Error(`${message} (CI=true: failing the run)`);
    process.stderr.write(`\n${'!'.repeat(78)}\n!! ${message}\n!! S3 integration tests will FAIL. Fix the above or run test/services/minio.sh start.\n${'!'.repeat(78)}\n\n`);
  }
  project.provide('minio', minio);

  return async () => {
    // Left running on purpose: start is idempotent and the next run starts instantly.
    if (process.env.CAIRN_STOP_SERVICES === '1' && minio.ok) await run(MINIO_SCRIPT, 'stop').catch(() => undefined);
  };
}

async function startService(script: string): Promise<ServiceStatus> {
  try {
    const stdout = await run(script, 'start');
    const env = parseExports(stdout);
    if (Object.keys(env).length === 0) return { ok: false, env, reason: `${script} start printed no environment` };
    return { ok: true, env };
  } catch (err) {
    return { ok: false, env: {}, reason: (err as Error).message.split('\n').slice(0, 5).join(' | ') };
  }
}

function run(script: string, command: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    // First run builds MinIO with `go install` (minutes); later runs take a second.
    const child = execFile('bash', [script, command], { cwd: ROOT, timeout: 20 * 60_000, maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) reject(new Error(`${script} ${command} failed: ${err.message}`));
      else resolvePromise(stdout);
    });
    child.stderr?.pipe(process.stderr);
  });
}

function parseExports(stdout: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return env;
}
