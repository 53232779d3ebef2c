import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ClassicLevel } from 'classic-level';
import { CairnError } from '../core/errors.js';
import { TableVanished, type LinkedTables } from './linked-tables.js';
import { parseCurrent, type ManifestFollower } from './manifest.js';
import { captureOf, type Capture, type CapturedFile } from './types.js';

/**
 * The synchronous phase of a checkpoint (README, Architecture, "Checkpoint"), for a LevelDB
 * folder whose owner guarantees that no write runs until this resolves.
 *
 * 1. Flush: DB::CompactRange always flushes the memtable first (TEST_CompactMemTable waits
 *    until the flushed table is in the MANIFEST and installed); on a range that overlaps no
 *    table it then does nothing else. The sentinel [0x00, 0x00] sorts below every key we
 *    write. Caveat (db_impl.cc TEST_CompactRange): the manual compaction request waits for
 *    an in-flight background compaction to finish, so the pause can include its tail.
 * 2. Pin: classic-level creates the native iterator (DB::NewIterator, which Refs the
 *    current Version) synchronously in db.iterator(); while it is open no table of that
 *    version is deleted. We also read the applied LSN through it, so the LSN and the
 *    pinned file set come from the same moment.
 * 3. Read CURRENT and the MANIFEST it names up to its size now, and parse that prefix: the
 *    MANIFEST record is written before the version is installed, so the prefix, not
 *    `leveldb.sstables`, is the authority. Tables the prefix adds after our pin are not
 *    protected by it; if a compaction deletes one before we link it (ENOENT), start over.
 *    Only the records appended since the previous capture are parsed (ManifestFollower).
 * 4. Hard-link the live tables (immutable, so a link is a consistent copy) into the
 *    database's linked-tables folder, where links made for earlier captures are reused
 *    (LinkedTables), and write the clean MANIFEST prefix and a CURRENT naming it into the
 *    staging folder. Steps 3 and 4 cost what changed since the last capture, so the pause
 *    stays flat as the state grows.
 */

/** Never written: compacting [SENTINEL, SENTINEL] overlaps no table and only flushes. */
export const SENTINEL_KEY = Buffer.from([0x00]);

const MAX_ATTEMPTS = 5;

export interface CaptureOptions {
  /** The applied LSN the owner believes is stored; a mismatch means a write raced us. */
  expectedLsn: number;
  /** The key holding the applied LSN as decimal text. */
  lsnKey: string;
  /** The database's table links, shared by its captures. */
  linked: LinkedTables;
  /** The database's MANIFEST as parsed by earlier captures. */
  manifest: ManifestFollower;
  /** The database's table sha256 cache, handed to the checkpoint through the capture. */
  tableHashes: Map<string, string>;
  attempts?: number;
}

/** Reads a file's first `size` bytes as of now (the MANIFEST keeps growing behind us). */
async function readPrefix(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}

async function attempt(db: ClassicLevel<string, Buffer>, dir: string, staging: string, options: CaptureOptions): Promise<{ lsn: number; files: CapturedFile[]; tables: string[] }> {
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const pin = db.iterator({ gte: options.lsnKey, lte: options.lsnKey, valueEncoding: 'utf8' });
  try {
    // next() also guarantees the native iterator exists should a future classic-level
    // create it lazily; the LSN read is the one the pinned version holds.
    const entry = (await pin.next()) as [string, string] | undefined;
    const lsn = entry === undefined ? -1 : Number(entry[1]);
    if (lsn !== options.expectedLsn) {
      throw new CairnError('INTERNAL', `capture saw applied LSN ${lsn}, expected ${options.expectedLsn}: a commit ran during the capture`);
    }
    const manifestName = parseCurrent(await readFile(join(dir, 'CURRENT'), 'utf8'));
    const prefix = await readPrefix(join(dir, manifestName));
    const manifest = options.manifest.follow(manifestName, prefix);
    // allSettled: no link may still be in flight when a retry starts over.
    const settled = await Promise.allSettled([...manifest.live].map(([number, t]) => options.linked.ensure(dir, number, t.size)));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const tables = settled.map((r) => (r as PromiseFulfilledResult<CapturedFile>).value);
    // Only whole records: a torn tail would read as EOF anyway, but a clean file is simpler to trust.
    const manifestPath = join(staging, manifestName);
    await writeFile(manifestPath, prefix.subarray(0, manifest.validLength));
    const currentPath = join(staging, 'CURRENT');
    const current = `${manifestName}\n`;
    await writeFile(currentPath, current);
    tables.sort((a, b) => a.name.localeCompare(b.name));
    return {
      lsn,
      tables: tables.map((t) => t.name),
      files: [
        ...tables,
        { name: manifestName, path: manifestPath, size: manifest.validLength },
        { name: 'CURRENT', path: currentPath, size: Buffer.byteLength(current) },
      ],
    };
  } finally {
    await pin.close();
  }
}

export async function captureLevelDb(db: ClassicLevel<string, Buffer>, dir: string, staging: string, options: CaptureOptions): Promise<Capture> {
  const started = performance.now();
  await db.compactRange(SENTINEL_KEY, SENTINEL_KEY, { keyEncoding: 'buffer' });
  const attempts = options.attempts ?? MAX_ATTEMPTS;
  for (let i = 1; ; i++) {
    try {
      const { lsn, files, tables } = await attempt(db, dir, staging, options);
      const syncPauseMs = performance.now() - started;
      const releaseTables = options.linked.hold(tables);
      return captureOf({
        dir: staging,
        lsn,
        files,
        syncPauseMs,
        tableHashes: options.tableHashes,
        release: async () => {
          await rm(staging, { recursive: true, force: true });
          await releaseTables();
        },
      });
    } catch (err) {
      if (err instanceof TableVanished && i < attempts) continue; // a compaction raced us
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof TableVanished) {
        throw new CairnError('STATE_UNAVAILABLE', `checkpoint capture gave up after ${attempts} attempts: table ${err.message} kept disappearing`);
      }
      throw err;
    }
  }
}
