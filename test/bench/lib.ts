import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PartitionState } from '../../src/state/partition-state.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MiB = 1024 * 1024;

/** One figure: a ratio of Cairn against a baseline measured in the same run on the same data. */
export interface Figure {
  figure: string;
  ratio: number;
  target: string;
  met: boolean;
  [detail: string]: unknown;
}

export function emit(figure: Figure): void {
  process.stdout.write(`${JSON.stringify(figure)}\n`);
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Starts (idempotently) MinIO and sets the S3 environment for this process. */
export function ensureMinio(): { endpoint: string; bucket: string } {
  const out = execFileSync('bash', [join(REPO_ROOT, 'test/services/minio.sh'), 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  for (const line of out.split('\n')) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) process.env[m[1]!] = m[2]!.replace(/^['"]|['"]$/g, '');
  }
  return { endpoint: process.env.S3_ENDPOINT!, bucket: process.env.S3_BUCKET! };
}

/** Starts (idempotently) the Kafka broker and returns its bootstrap addresses. */
export function ensureKafka(): string[] {
  const out = execFileSync('bash', [join(REPO_ROOT, 'test/services/kafka.sh'), 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const m = /^export KAFKA_BROKERS=(.*)$/m.exec(out);
  if (!m) throw new Error('test/services/kafka.sh start printed no KAFKA_BROKERS');
  return m[1]!.trim().split(',');
}

export function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export function ensureS5cmd(): string {
  return execFileSync('bash', [join(REPO_ROOT, 'test/services/s5cmd.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export function tempDir(label: string): string {
  return mkdtempSync(join(process.env.CAIRN_BENCH_DIR ?? tmpdir(), `cairn-bench-${label}-`));
}

export function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

export const keyOf = (i: number) => `k${String(i).padStart(10, '0')}`;

/**
 * Fills a state folder with incompressible values until its tables hold `bytes`. Values are
 * random base64, which LevelDB's snappy cannot shrink, so table bytes track the target.
 */
export async function buildState(dir: string, bytes: number, valueBytes = 1024): Promise<{ state: PartitionState; keys: number; lsn: number }> {
  const state = await PartitionState.open(dir, { create: true, partition: 'bench' });
  const perBatch = 1000;
  const keys = Math.ceil(bytes / (valueBytes + 16));
  let lsn = -1;
  for (let start = 0; start < keys; start += perBatch) {
    const writes = new Map<string, unknown>();
    for (let i = start; i < Math.min(keys, start + perBatch); i++) writes.set(keyOf(i), randomBytes((valueBytes * 3) / 4).toString('base64'));
    lsn++;
    await state.commit(writes, lsn);
  }
  return { state, keys, lsn };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
