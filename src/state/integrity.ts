import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, isCairnError } from '../core/errors.js';
import { parseCurrent, parseManifest, readLogRecords, tableFileName } from './manifest.js';

/**
 * Checks a LevelDB folder before LevelDB opens it, because LevelDB's own recovery hides
 * damage: with paranoid_checks off (classic-level cannot turn it on) a write-ahead-log
 * record with a bad checksum makes it drop the rest of that 32 KiB block and carry on, so a
 * later batch — holding a newer applied LSN — survives while earlier batches are gone. The
 * state then claims an LSN it does not hold, and a checkpoint would publish it. Opening
 * also replays the log into a table and deletes it, so afterwards the evidence is gone:
 * the check must come first.
 *
 * What it checks, all of it cheap (the MANIFEST and the logs are small; tables are stat'ed,
 * not read):
 * - CURRENT names a MANIFEST whose records all pass their crc (a torn final record is a
 *   crash mid-write, which LevelDB also treats as the end);
 * - every table the MANIFEST lists exists with exactly the recorded size (a truncated or
 *   missing table otherwise fails every read that touches it, on every start);
 * - every write-ahead log LevelDB would replay has no corrupt record.
 * Table *contents* are checked block by block when a checkpoint first reads a table
 * (table-check.ts), before anything of it is published.
 */
export const LOCAL_STATE = 'local-state';

/** A CORRUPT error about local state: the runtime answers it by bootstrapping again. */
export function localCorruption(dir: string, message: string, options: { file?: string; cause?: unknown } = {}): CairnError {
  return new CairnError('CORRUPT', `local state ${dir} is damaged: ${message}`, {
    ...(options.cause === undefined ? {} : { cause: options.cause }),
    details: { scope: LOCAL_STATE, dir, ...(options.file ? { file: options.file } : {}) },
  });
}

export function isLocalCorruption(err: unknown): err is CairnError {
  return isCairnError(err, 'CORRUPT') && err.details?.scope === LOCAL_STATE;
}

/** Throws a local-state CORRUPT error if the folder's files are damaged; a folder without CURRENT passes (nothing to check). */
export async function checkStateFiles(dir: string): Promise<void> {
  let current: string;
  try {
    current = await readFile(join(dir, 'CURRENT'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const manifestName = guard(dir, 'CURRENT', () => parseCurrent(current));
  const manifestBytes = await readFile(join(dir, manifestName)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw localCorruption(dir, `CURRENT names ${manifestName}, which is missing`, { file: manifestName });
    throw err;
  });
  const manifest = guard(dir, manifestName, () => parseManifest(manifestBytes));

  const names = new Set(await readdir(dir));
  for (const [number, table] of manifest.live) {
    const name = [tableFileName(number), tableFileName(number, 'sst')].find((n) => names.has(n));
    if (!name) throw localCorruption(dir, `table ${tableFileName(number)} listed in ${manifestName} is missing`, { file: tableFileName(number) });
    const size = (await stat(join(dir, name))).size;
    if (size !== table.size) throw localCorruption(dir, `table ${name} has ${size} bytes, ${manifestName} records ${table.size} (truncated or overwritten)`, { file: name });
  }

  // LevelDB replays the logs numbered at or above the MANIFEST's log number, and the
  // previous log number if one is set (VersionSet::Recover, DBImpl::Recover).
  const from = manifest.logNumber ?? 0;
  for (const name of names) {
    const m = /^(\d+)\.log$/.exec(name);
    if (!m) continue;
    const number = Number(m[1]);
    if (number < from && number !== manifest.prevLogNumber) continue;
    const bytes = await readFile(join(dir, name));
    guard(dir, name, () => readLogRecords(bytes));
  }
}

function guard<T>(dir: string, file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isCairnError(err, 'CORRUPT')) throw localCorruption(dir, `${file}: ${err.message}`, { file, cause: err });
    throw err;
  }
}
