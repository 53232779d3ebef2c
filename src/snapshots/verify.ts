import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PQueue from 'p-queue';
import { sha256Hex } from '../core/checksums.js';
import { isCairnError } from '../core/errors.js';
import { checkTableBytes } from '../state/table-check.js';
import type { ObjectStore } from '../store/types.js';
import { isTableFile, layout } from './layout.js';
import { assertSnapshotLsn } from './restore.js';
import type { SnapshotMetadata } from './schemas.js';

/**
 * `lsn`: the files are as recorded, but the state they make holds another applied LSN than
 * the metadata (and the folder name) claim, which restore would reject; `state`: they do not
 * open as a database at all (e.g. a table the MANIFEST needs is not listed).
 */
export interface VerifyProblem {
  name: string;
  key: string;
  problem: 'missing' | 'size' | 'sha256' | 'table' | 'lsn' | 'state';
  expected?: string | number;
  actual?: string | number;
}

export interface VerifyReport {
  partition: string;
  snapshotId: string;
  lsn: number;
  ok: boolean;
  files: number;
  bytes: number;
  problems: VerifyProblem[];
}

/**
 * Reads every file of a snapshot back from the store and checks its size, its sha256 and,
 * for tables, every block checksum; when all of them pass, opens the state they make (in a
 * temporary folder, never under the state dir) and checks its applied LSN as restore does.
 */
export async function verifySnapshot(store: ObjectStore, metadata: SnapshotMetadata, concurrency: number): Promise<VerifyReport> {
  const work = await mkdtemp(join(tmpdir(), 'cairn-verify-'));
  try {
    const report = await verifyInto(store, metadata, concurrency, work);
    if (report.problems.length === 0) await checkState(work, metadata, report.problems);
    return { ...report, ok: report.problems.length === 0 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function checkState(dir: string, metadata: SnapshotMetadata, problems: VerifyProblem[]): Promise<void> {
  const key = layout.metadata(layout.snapshotPath(metadata.partition, metadata.snapshotId, metadata.lsn));
  try {
    await assertSnapshotLsn(dir, metadata);
  } catch (err) {
    if (!isCairnError(err, 'CORRUPT') && !isCairnError(err, 'NOT_FOUND')) throw err;
    if (err.details?.problem === 'lsn') problems.push({ name: 'applied LSN', key, problem: 'lsn', expected: metadata.lsn, actual: err.details.actual as number });
    else problems.push({ name: 'state', key, problem: 'state', actual: err.message });
  }
}

async function verifyInto(store: ObjectStore, metadata: SnapshotMetadata, concurrency: number, dir: string): Promise<VerifyReport> {
  const queue = new PQueue({ concurrency });
  const problems: VerifyProblem[] = [];
  let bytes = 0;
  await Promise.all(
    metadata.files.map((file) =>
      queue.add(async () => {
        let body: Buffer;
        try {
          body = (await store.get(file.key)).body;
        } catch (err) {
          if (!isCairnError(err, 'NOT_FOUND')) throw err;
          problems.push({ name: file.name, key: file.key, problem: 'missing' });
          return;
        }
        bytes += body.length;
        if (body.length !== file.size) {
          problems.push({ name: file.name, key: file.key, problem: 'size', expected: file.size, actual: body.length });
          return;
        }
        const actual = sha256Hex(body);
        if (actual !== file.sha256) {
          problems.push({ name: file.name, key: file.key, problem: 'sha256', expected: file.sha256, actual });
          return;
        }
        // Bytes as recorded can still be bytes that were damaged before they were recorded
        // (by a version that did not check tables before publishing): check every block.
        if (isTableFile(file.name)) {
          try {
            checkTableBytes(body, file.key, { scope: 'store' });
          } catch (err) {
            if (!isCairnError(err, 'CORRUPT')) throw err;
            problems.push({ name: file.name, key: file.key, problem: 'table', actual: err.message });
            return;
          }
        }
        await writeFile(join(dir, file.name), body);
      }),
    ),
  );
  problems.sort((a, b) => a.name.localeCompare(b.name));
  return { partition: metadata.partition, snapshotId: metadata.snapshotId, lsn: metadata.lsn, ok: problems.length === 0, files: metadata.files.length, bytes, problems };
}
