import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { readerGroupsLeft } from './broker-litter.js';

/**
 * Starts the real services integration tests need (MinIO and Kafka, concurrently) once per
 * `vitest run`.
 *
 * The environment reaches test workers two ways: process.env here (forked workers inherit
 * the parent's environment, which is what child processes spawned by tests also need),
 * and vitest's provide/inject, which is the documented channel and also carries the
 * failure reason. Tests read it through test/helpers/s3.ts and test/helpers/kafka.ts.
 *
 * Missing services are never a silent skip: with CI=true start-up failure fails the run;
 * otherwise the tests that need it fail with "MinIO not available: <reason>" or
 * "Kafka not available: <reason>".
 */
export interface ServiceStatus {
  ok: boolean;
  env: Record<string, string>;
  reason?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    minio: ServiceStatus;
    kafka: ServiceStatus;
  }
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MINIO_SCRIPT = resolve(ROOT, 'test/services/minio.sh');
const KAFKA_SCRIPT = resolve(ROOT, 'test/services/kafka.sh');

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Concurrently: a first run builds MinIO and resolves Kafka's jars, both slow.
  const [minio, kafka] = await Promise.all([startService(MINIO_SCRIPT), startService(KAFKA_SCRIPT)]);
  // Read by test/helpers/backends.ts and test/helpers/kafka.ts (and by child processes).
  const failures = [accept('MinIO', minio, 'CAIRN_MINIO_ERROR', 'S3', MINIO_SCRIPT), accept('Kafka', kafka, 'CAIRN_KAFKA_ERROR', 'Kafka', KAFKA_SCRIPT)].filter(
    (m): m is string => m !== undefined,
  );
  if (failures.length > 0 && process.env.CI === 'true') throw new Error(`${failures.join('; ')} (CI=true: failing the run)`);
  project.provide('minio', minio);
  project.provide('kafka', kafka);

  return async () => {
    // Before anything stops: a consumer group a Cairn reader left behind fails the run.
    const left = kafka.ok ? await readerGroupsLeft(kafka.env.KAFKA_BROKERS!.split(',')) : [];
    // Left running on purpose: start is idempotent and the next run starts instantly.
    if (process.env.CAIRN_STOP_SERVICES === '1') {
      await Promise.all([minio.ok && run(MINIO_SCRIPT, 'stop').catch(() => undefined), kafka.ok && run(KAFKA_SCRIPT, 'stop').catch(() => undefined)]);
    }
    if (left.length > 0) throw new Error(`Cairn readers left ${left.length} consumer group(s) on the broker: ${left.slice(0, 5).join(', ')}`);
  };
}

/** Exports a started service's environment, or records and announces why it is missing. */
function accept(name: string, status: ServiceStatus, errorVariable: string, tests: string, script: string): string | undefined {
  if (status.ok) {
    Object.assign(process.env, status.env);
    return undefined;
  }
  const message = `${name} not available: ${status.reason}`;
  process.env[errorVariable] = status.reason ?? 'unknown';
  if (process.env.CI !== 'true') {
    const fix = `run ${script.slice(ROOT.length + 1)} start`;
    process.stderr.write(`\n${'!'.repeat(78)}\n!! ${message}\n!! ${tests} integration tests will FAIL. Fix the above or ${fix}.\n${'!'.repeat(78)}\n\n`);
  }
  return message;
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
    // First run builds MinIO with `go install` and resolves Kafka with Maven (minutes);
    // later runs take seconds.
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
