import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach } from 'vitest';
import { normaliseConfig, type CairnConfig, type RawConfig } from '../../src/core/config.js';
import { PartitionState } from '../../src/state/partition-state.js';

/**
 * Helpers for the runtime end-to-end suites (crash, trim gaps): child-process plumbing,
 * folder fingerprints, and a direct reader of a filesystem store's snapshot folders that
 * uses none of the code under test.
 */

/** Writes a config file (JSON) and returns its path. */
export function writeConfig(dir: string, config: Record<string, unknown>, name = 'cairn.config.json'): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/** A child started by spawnCli, with its output collected and its exit awaitable. */
export interface Watched {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code and signal once the process is gone and its pipes closed. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when a stderr line matches (or rejects on exit / timeout). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  isRunning(): boolean;
}

export function watch(child: ChildProcess): Watched {
  let out = '';
  let err = '';
  let running = true;
  const listeners = new Set<(line: string) => void>();
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => {
    const text = d.toString();
    err += text;
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) for (const l of [...listeners]) l(line);
  });
  child.stdin?.end();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    isRunning: () => running,
    waitForLine(pattern, timeoutMs = 30_000) {
      const seen = err.split('\n').find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timed out waiting for ${pattern} on stderr:\n${err.slice(-2000)}`)), timeoutMs);
        const onLine = (line: string) => {
          if (pattern.test(line)) finish(undefined, line);
        };
        const finish = (e?: Error, line?: string) => {
          clearTimeout(timer);
          listeners.delete(onLine);
          if (e) reject(e);
          else resolve(line!);
        };
        listeners.add(onLine);
        void exited.then(() => finish(new Error(`process exited before ${pattern} appeared on stderr:\n${err.slice(-2000)}`)));
      });
    },
  };
}

/** sha256 of every file under `dir`, keyed by relative path: a byte-for-byte fingerprint. */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** Names of every file and folder under `dir` (relative), for "nothing was created" checks. */
export function listTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(dir, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** A LevelDB state folder's applied LSN and entries, read in-process. */
export async function readState(dir: string): Promise<{ lsn: number; entries: Map<string, unknown> }> {
  const state = await PartitionState.open(dir, { create: false });
  try {
    const entries = new Map<string, unknown>();
    for await (const e of state.entries()) entries.set(e.key, e.value);
    return { lsn: state.appliedLsn, entries };
  } finally {
    await state.close();
  }
}

export interface FsPointer {
  snapshotId: string;
  lsn: number;
  path: string;
  retained: Array<{ snapshotId: string; lsn: number; path: string }>;
}

/**
 * Reads `{root}/{partition}/latest.json` straight from disk and checks that the snapshot it
 * points to, and every retained one, is complete: metadata.json parses, names its own LSN,
 * and every listed file exists with the listed size and sha256. Returns the pointer (or
 * undefined when there is none) and a list of problems (empty when all is well).
 */
export function inspectFsSnapshots(root: string, partition: string): { pointer?: FsPointer; problems: string[] } {
  const latestPath = join(root, partition, 'latest.json');
  if (!existsSync(latestPath)) return { problems: [] };
  const problems: string[] = [];
  let pointer: FsPointer;
  try {
    pointer = JSON.parse(readFileSync(latestPath, 'utf8')) as FsPointer;
  } catch (err) {
    return { problems: [`latest.json does not parse: ${(err as Error).message}`] };
  }
  if (!Number.isSafeInteger(pointer.lsn) || typeof pointer.path !== 'string' || !Array.isArray(pointer.retained)) {
    return { problems: [`latest.json is malformed: ${JSON.stringify(pointer)}`] };
  }
  if (pointer.retained[0]?.snapshotId !== pointer.snapshotId) problems.push('latest.json: retained[0] is not the latest snapshot');
  for (const entry of pointer.retained) {
    const metaPath = join(root, entry.path, 'metadata.json');
    if (!existsSync(metaPath)) {
      problems.push(`${entry.path}: metadata.json missing`);
      continue;
    }
    let meta: { lsn: number; snapshotId: string; files: Array<{ name: string; size: number; sha256: string; key: string }> };
    try {
      meta = JSON.parse(readFileSync(metaPath, 'utf8'));
    } catch (err) {
      problems.push(`${entry.path}: metadata.json does not parse: ${(err as Error).message}`);
      continue;
    }
    if (meta.lsn !== entry.lsn || meta.snapshotId !== entry.snapshotId) problems.push(`${entry.path}: metadata names ${meta.snapshotId}@${meta.lsn}`);
    if (!meta.files.some((f) => f.name === 'CURRENT')) problems.push(`${entry.path}: no CURRENT listed`);
    for (const f of meta.files) {
      const p = join(root, f.key);
      if (!existsSync(p)) {
        problems.push(`${entry.path}: ${f.key} missing`);
        continue;
      }
      const size = statSync(p).size;
      if (size !== f.size) problems.push(`${entry.path}: ${f.key} is ${size} bytes, listed ${f.size}`);
      else if (createHash('sha256').update(readFileSync(p)).digest('hex') !== f.sha256) problems.push(`${entry.path}: ${f.key} sha256 mismatch`);
    }
  }
  return { pointer, problems };
}

/** A small seeded PRNG (mulberry32) so a failing trial plan can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The config of an in-process world on the embedded default: a store, a log and state under
 * `dir`. `overrides` replace whole sections (shallow), as a config file would.
 */
export function embeddedConfig(dir: string, overrides: Partial<RawConfig> = {}): { raw: RawConfig; config: CairnConfig } {
  const raw: RawConfig = {
    store: { url: 'file://./store' },
    log: { type: 'embedded', dir: './log' },
    stateDir: './state',
    node: 'n1',
    snapshots: { everyRecords: 100_000, retain: 3, concurrency: 4 },
    runtime: { batchSize: 50, onBadRecord: 'stop' },
    ...overrides,
  };
  return { raw, config: normaliseConfig(raw, dir, 'test') };
}

/**
 * Folders and closers a test registers as it goes, released after each test (closers in
 * reverse order, then folders), whatever the outcome.
 */
export function releasedAfterEach(): { dirs: string[]; closers: Array<() => Promise<void>> } {
  const dirs: string[] = [];
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return { dirs, closers };
}
