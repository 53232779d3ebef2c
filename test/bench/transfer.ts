import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Cairn } from '../../src/runtime/cairn.js';
import type { Capture } from '../../src/state/types.js';
import { REPO_ROOT, emit, round, tempDir, timed } from './lib.js';

/**
 * The two bulk transfers against s5cmd (Go, 64 workers) moving the same files between the
 * same folder and the same MinIO: a first (full) checkpoint, and a restore. Runs alternate
 * between the two tools so that page-cache and MinIO warm-up effects fall on both, and each
 * figure takes the best of its runs.
 */
export interface TransferSetup {
  cairn: Cairn;
  s5cmd: string;
  endpoint: string;
  bucket: string;
  /** The store prefix `cairn` writes under (s3://bucket/prefix). */
  prefix: string;
  dir: string;
}

/** A first checkpoint (every table checked block by block, hashed, uploaded) vs `s5cmd cp` of the capture's files. */
export async function uploadFigure(s: TransferSetup, capture: Capture, rounds = 2): Promise<void> {
  // s5cmd uploads a folder: the capture's files (tables live in the state's link folder,
  // MANIFEST and CURRENT in the staging folder) hard-linked into one, which costs nothing.
  const flat = join(s.dir, 'upload-flat');
  mkdirSync(flat);
  for (const f of capture.files) linkSync(f.path, join(flat, f.name));
  const s5: number[] = [];
  const ours: number[] = [];
  let bytes = 0;
  for (let r = 0; r < rounds; r++) {
    s5.push((await timed(async () => execFileSync(s.s5cmd, ['--endpoint-url', s.endpoint, '--numworkers', '64', 'cp', `${flat}/*`, `s3://${s.bucket}/${s.prefix}-s5up-${r}/`], { stdio: ['ignore', 'ignore', 'inherit'] }))).ms);
    // A partition of its own each round, so each is a first checkpoint; an empty hash cache, so
    // every table is read and checked as after a fresh open.
    const run = await timed(() => s.cairn.snapshots.checkpoint(capture, { partition: `up${r}`, node: 'bench', source: 'bench:up', hashCache: new Map() }));
    ours.push(run.ms);
    bytes = run.value.metadata.stats.uploadedBytes;
  }
  const ratio = Math.min(...s5) / Math.min(...ours);
  emit({ figure: 'first_checkpoint_vs_s5cmd_upload', ratio: round(ratio), target: '>= 1.0', met: ratio >= 1.0, bytes, cairnMs: Math.round(Math.min(...ours)), s5cmdMs: Math.round(Math.min(...s5)), note: 'cairn also checks every block of every table and hashes every byte' });
  rmSync(flat, { recursive: true, force: true });
}

/**
 * Restore (download, sha256 of every byte, fsync of every file and the folder, LevelDB opened
 * to check the applied LSN, rename into place) vs `s5cmd cp` of the same objects, which writes
 * them and stops; and vs `s5cmd cp` followed by `sync -f`, which makes its files as durable as
 * a restore's. Cairn runs in a child process so its peak RSS is the restore's own.
 */
export async function restoreFigure(s: TransferSetup, partition: string, folder: string, rounds = 2): Promise<void> {
  const s5: number[] = [];
  const s5sync: number[] = [];
  const ours: Array<{ ms: number; maxRssMiB: number }> = [];
  for (let r = 0; r < rounds; r++) {
    const s5dir = tempDir('s5cmd');
    const copy = await timed(async () => execFileSync(s.s5cmd, ['--endpoint-url', s.endpoint, '--numworkers', '64', 'cp', `s3://${s.bucket}/${s.prefix}/${folder}/*`, `${s5dir}/`], { stdio: ['ignore', 'ignore', 'inherit'] }));
    const flush = await timed(async () => execFileSync('sync', ['-f', s5dir]));
    s5.push(copy.ms);
    s5sync.push(copy.ms + flush.ms);
    rmSync(s5dir, { recursive: true, force: true });
    execFileSync('sync'); // nothing of s5cmd's left to flush on Cairn's clock
    const target = join(tempDir('restore'), partition);
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/bench/restore-child.ts'), `s3://${s.bucket}/${s.prefix}`, s.endpoint, partition, target], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    ours.push(JSON.parse(out.trim().split('\n').pop()!) as { ms: number; maxRssMiB: number });
    rmSync(target, { recursive: true, force: true });
    execFileSync('sync');
  }
  const best = Math.min(...ours.map((o) => o.ms));
  const ratio = Math.min(...s5) / best;
  emit({
    figure: 'restore_vs_s5cmd',
    ratio: round(ratio),
    target: '>= 1.0',
    met: ratio >= 1.0,
    cairnMs: Math.round(best),
    s5cmdMs: Math.round(Math.min(...s5)),
    ratioVsS5cmdThenSync: round(Math.min(...s5sync) / best),
    s5cmdThenSyncMs: Math.round(Math.min(...s5sync)),
    cairnPeakRssMiB: Math.round(Math.max(...ours.map((o) => o.maxRssMiB))),
    note: 'cairn also verifies sha256, fsyncs and opens LevelDB',
  });
}
