import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { CairnError, badInput, isDiskFull } from '../core/errors.js';
import { validatePartition } from '../core/names.js';
import { SENTINEL_KEY, captureLevelDb } from './capture.js';
import { checkStateFiles, localCorruption } from './integrity.js';
import { LinkedTables } from './linked-tables.js';
import { ManifestFollower } from './manifest.js';
import { noteClosed, noteOpened, readStateMarker, restoresInProgress, writeStateMarker } from './state-folder.js';
import { DELETE, type Capture, type StateEntry, type StateWrite } from './types.js';

/**
 * Local partition state on classic-level (LevelDB 1.20).
 *
 * Key layout (bytes, compared by LevelDB's bytewise comparator):
 *   0x00            the flush sentinel: never written; compactRange([0x00, 0x00]) overlaps
 *                   no table, so it only flushes the memtable (see capture.ts)
 *   'd:' + key      user data (UTF-8); the prefix keeps user keys apart from metadata
 *   'm:lsn'         applied LSN (decimal), written in the same batch as the data it covers
 *   'm:partition'   the partition name the folder was created for (informational)
 * Entries come back in UTF-8 byte order of the user key.
 *
 * Files: besides LevelDB's own, `.cairn-linked/` holds hard links to the tables of recent
 * checkpoint captures (linked-tables.ts); LevelDB ignores it, and it is cleared on open.
 * `cairn-state.json` names the partition the folder is opened as (state-folder.ts), so a
 * restore can tell a state folder from anything else without opening it.
 *
 * Values: one tag byte then the payload: 'j' JSON text, 'b' raw bytes (Uint8Array values,
 * for processors that ask for bytes). Decoding returns a Buffer for 'b'.
 */

const DATA_PREFIX = 'd:';
const DATA_END = 'd;'; // ';' is ':' + 1: the exclusive upper bound of the data prefix
const META_LSN = 'm:lsn';
const META_PARTITION = 'm:partition';
const TAG_JSON = 0x6a; // 'j'
const TAG_BYTES = 0x62; // 'b'
const LINKED_DIR = '.cairn-linked';

export type StateDb = ClassicLevel<string, Buffer>;

export interface PartitionStateOptions {
  /** Create the database when the folder holds none (default true); else NOT_FOUND. */
  create?: boolean;
  /** Recorded in the state when it is first created. Not enforced on open: a fork's state
   * is restored from its parent's files and legitimately carries the parent's name. Also
   * written to the folder's marker, which says whose state folder it now is. */
  partition?: string;
  /**
   * fsync every commit. Default false: LevelDB then appends the batch to its write-ahead
   * log without fsync, which survives the process being killed (kill -9: the bytes are in
   * the OS page cache) but not a power loss or kernel crash, where the last commits can be
   * lost (never torn: recovery stops at the last intact batch). The object store, not the
   * local disk, is the durable copy, and a lost tail is re-applied from the log.
   */
  sync?: boolean;
  /** LevelDB memtable size in bytes; small values force many tables (tests, benchmarks). */
  writeBufferSize?: number;
}

export interface EntriesOptions {
  gt?: string;
  gte?: string;
  lt?: string;
  limit?: number;
}

function encodeValue(key: string, value: unknown): Buffer {
  if (value instanceof Uint8Array) {
    const out = Buffer.allocUnsafe(value.length + 1);
    out[0] = TAG_BYTES;
    out.set(value, 1);
    return out;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw badInput(`value for key ${JSON.stringify(key)} is not JSON-serialisable: ${(err as Error).message}`);
  }
  if (text === undefined) throw badInput(`value for key ${JSON.stringify(key)} is not JSON-serialisable (${typeof value})`);
  // One allocation, encoded in place: this runs for every value of every batch.
  const out = Buffer.allocUnsafe(1 + Buffer.byteLength(text, 'utf8'));
  out[0] = TAG_JSON;
  out.write(text, 1, 'utf8');
  return out;
}

function decodeValue(buf: Buffer): unknown {
  if (buf[0] === TAG_BYTES) return Buffer.from(buf.subarray(1));
  if (buf[0] === TAG_JSON) return JSON.parse(buf.toString('utf8', 1));
  throw new Error(`unknown tag byte ${buf[0]}`);
}

/**
 * Maps classic-level's failures (error.cause.code) onto Cairn's codes: damage is a
 * local-state CORRUPT (the runtime bootstraps again), a full disk DISK_FULL, a folder held
 * elsewhere or any other I/O failure STATE_UNAVAILABLE.
 */
function stateError(dir: string, err: unknown, doing: string): CairnError {
  if (err instanceof CairnError) return err;
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code;
  const message = e.cause?.message ?? e.message ?? String(err);
  if (isDiskFull(err)) return new CairnError('DISK_FULL', `${doing} ${dir}: no space left on device (${message})`, { cause: err, details: { dir } });
  if (code === 'LEVEL_LOCKED') {
    return new CairnError('STATE_UNAVAILABLE', `state folder ${dir} is open by another process or handle: ${message}`, { cause: err });
  }
  if (code === 'LEVEL_CORRUPTION' || /Corruption:/.test(message) || (code === 'LEVEL_IO_ERROR' && /No such file|not found/i.test(message))) {
    return localCorruption(dir, `${doing}: ${message}`, { cause: err });
  }
  if (/does not exist/.test(message)) return new CairnError('NOT_FOUND', `no state in ${dir}`, { cause: err });
  return new CairnError('STATE_UNAVAILABLE', `${doing} ${dir}: ${message}`, { cause: err });
}

export class PartitionState {
  private lsn: number;
  private capturing = false;
  private closed = false;
  private readonly linked: LinkedTables;
  private readonly manifest = new ManifestFollower();
  private readonly tableHashes = new Map<string, string>();

  private constructor(
    readonly dir: string,
    private readonly db: StateDb,
    lsn: number,
    private readonly storedPartition: string | undefined,
    private readonly sync: boolean,
  ) {
    this.lsn = lsn;
    this.linked = new LinkedTables(join(dir, LINKED_DIR));
  }

  static async open(dir: string, options: PartitionStateOptions = {}): Promise<PartitionState> {
    const location = resolve(dir);
    const create = options.create ?? true;
    if (options.partition !== undefined) validatePartition(options.partition);
    if (!create && !existsSync(resolve(location, 'CURRENT'))) throw new CairnError('NOT_FOUND', `no state in ${location}`);
    // Before LevelDB: its recovery would silently drop damaged log records (integrity.ts).
    await checkStateFiles(location);
    const db: StateDb = new ClassicLevel<string, Buffer>(location, {
      keyEncoding: 'utf8',
      valueEncoding: 'buffer',
      createIfMissing: create,
      ...(options.writeBufferSize ? { writeBufferSize: options.writeBufferSize } : {}),
    });
    try {
      await db.open();
    } catch (err) {
      throw stateError(location, err, 'cannot open state folder');
    }
    noteOpened(location);
    try {
      // Only now, holding LevelDB's lock: a restore that started before us has its work
      // folder in place, and one starting after us sees the lock (state-folder.ts).
      const restoring = await restoresInProgress(location);
      if (restoring.length > 0) {
        throw new CairnError('STATE_UNAVAILABLE', `state folder ${location} is being replaced by a restore (pid ${restoring[0]!.pid}); start again once it has finished`, {
          details: { dir: location, restore: restoring[0]!.path },
        });
      }
      const [lsnBuf, partBuf] = await db.getMany([META_LSN, META_PARTITION], { valueEncoding: 'utf8' });
      const lsn = lsnBuf === undefined ? -1 : Number(lsnBuf);
      if (!Number.isSafeInteger(lsn) || lsn < -1) throw new CairnError('CORRUPT', `state folder ${location}: bad applied LSN ${JSON.stringify(lsnBuf)}`);
      let partition = partBuf as string | undefined;
      if (partition === undefined && options.partition !== undefined) {
        await db.put(META_PARTITION, options.partition, { valueEncoding: 'utf8' });
        partition = options.partition;
      }
      if (options.partition !== undefined && (await readStateMarker(location)) !== options.partition) await writeStateMarker(location, options.partition);
      const state = new PartitionState(location, db, lsn, partition, options.sync ?? false);
      // Links left by an earlier owner may name numbers this open reuses: never trust them.
      await state.linked.reset();
      return state;
    } catch (err) {
      await db.close().catch(() => undefined);
      noteClosed(location);
      throw stateError(location, err, 'cannot open state folder');
    }
  }

  /** The last LSN whose writes are committed; -1 when nothing was ever applied. */
  get appliedLsn(): number {
    return this.lsn;
  }

  /** The partition name recorded when the state was created (a fork's may be its parent's). */
  get partition(): string | undefined {
    return this.storedPartition;
  }

  async get(key: string): Promise<unknown | undefined> {
    this.assertOpen();
    let buf: Buffer | undefined;
    try {
      buf = await this.db.get(DATA_PREFIX + key);
    } catch (err) {
      throw stateError(this.dir, err, `cannot read ${JSON.stringify(key)} from`);
    }
    return buf === undefined ? undefined : this.decode(key, buf);
  }

  /**
   * Applies `writes` (DELETE removes a key) and records `lsn` as applied, in one atomic
   * LevelDB batch: after a crash the state holds either all of it or none of it.
   */
  async commit(writes: ReadonlyMap<string, StateWrite>, lsn: number, options: { sync?: boolean } = {}): Promise<void> {
    this.assertOpen();
    if (this.capturing) throw new CairnError('INTERNAL', 'commit during a checkpoint capture: the apply loop must pause');
    if (!Number.isSafeInteger(lsn) || lsn < 0) throw new CairnError('INTERNAL', `commit with invalid LSN ${lsn}`);
    if (lsn < this.lsn) throw new CairnError('INTERNAL', `applied LSN would go backwards: ${this.lsn} -> ${lsn}`);
    const batch = this.db.batch();
    for (const [key, value] of writes) {
      if (value === DELETE) batch.del(DATA_PREFIX + key);
      else batch.put(DATA_PREFIX + key, encodeValue(key, value));
    }
    batch.put(META_LSN, Buffer.from(String(lsn)));
    try {
      await batch.write({ sync: options.sync ?? this.sync });
    } catch (err) {
      throw stateError(this.dir, err, `cannot commit LSN ${lsn} to`);
    }
    this.lsn = lsn;
  }

  /** User entries in key order (UTF-8 bytes); `gt`/`gte`/`lt` bound user keys. */
  async *entries(options: EntriesOptions = {}): AsyncIterable<StateEntry> {
    this.assertOpen();
    const range: { gt?: string; gte?: string; lt: string; limit?: number } = { lt: DATA_END };
    if (options.gt !== undefined) range.gt = DATA_PREFIX + options.gt;
    else range.gte = DATA_PREFIX + (options.gte ?? '');
    if (options.lt !== undefined) range.lt = DATA_PREFIX + options.lt;
    if (options.limit !== undefined) range.limit = options.limit;
    try {
      for await (const [k, v] of this.db.iterator(range)) {
        yield { key: k.slice(DATA_PREFIX.length), value: this.decode(k, v) };
      }
    } catch (err) {
      throw stateError(this.dir, err, 'cannot read entries of');
    }
  }

  /**
   * A consistent read of the live state, as of one moment while the apply loop keeps
   * committing: one LevelDB snapshot serves the applied LSN and the entries, so a reader
   * never sees half a batch or values newer than the LSN it is told (Kafka Streams'
   * interactive queries). A key, or a range of at most `limit` entries.
   */
  async query(q: { key: string } | (Omit<EntriesOptions, 'limit'> & { limit: number })): Promise<{ lsn: number; entries: StateEntry[] }> {
    this.assertOpen();
    const snapshot = this.db.snapshot();
    try {
      const lsnBuf = await this.db.get(META_LSN, { snapshot });
      const lsn = lsnBuf === undefined ? -1 : Number(lsnBuf.toString('utf8'));
      if ('key' in q) {
        const buf = await this.db.get(DATA_PREFIX + q.key, { snapshot });
        return { lsn, entries: buf === undefined ? [] : [{ key: q.key, value: this.decode(q.key, buf) }] };
      }
      const range: { gt?: string; gte?: string; lt: string; limit: number } = { lt: q.lt !== undefined ? DATA_PREFIX + q.lt : DATA_END, limit: q.limit };
      if (q.gt !== undefined) range.gt = DATA_PREFIX + q.gt;
      else range.gte = DATA_PREFIX + (q.gte ?? '');
      const entries: StateEntry[] = [];
      for await (const [k, v] of this.db.iterator({ ...range, snapshot })) entries.push({ key: k.slice(DATA_PREFIX.length), value: this.decode(k, v) });
      return { lsn, entries };
    } catch (err) {
      throw stateError(this.dir, err, 'cannot query');
    } finally {
      await snapshot.close();
    }
  }

  async count(): Promise<number> {
    this.assertOpen();
    let n = 0;
    for await (const _ of this.db.keys({ gte: DATA_PREFIX, lt: DATA_END })) n++;
    return n;
  }

  /** Compacts every key down to the bottom level (tests use it to provoke compactions). */
  async compactAll(): Promise<void> {
    this.assertOpen();
    await this.db.compactRange(SENTINEL_KEY, Buffer.from([0xff]), { keyEncoding: 'buffer' });
  }

  /**
   * The synchronous phase of a checkpoint (capture.ts). The caller must not commit until
   * it resolves; a commit attempted meanwhile fails rather than slipping into the capture.
   */
  async capture(stagingDir: string): Promise<Capture> {
    this.assertOpen();
    if (this.capturing) throw new CairnError('INTERNAL', 'a capture is already running');
    this.capturing = true;
    try {
      return await captureLevelDb(this.db, this.dir, resolve(stagingDir), {
        expectedLsn: this.lsn,
        lsnKey: META_LSN,
        linked: this.linked,
        manifest: this.manifest,
        tableHashes: this.tableHashes,
      });
    } finally {
      this.capturing = false;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.db.close();
    } finally {
      noteClosed(this.dir);
    }
    await this.linked.dispose();
  }

  /** A stored value that does not decode was damaged on disk (what we write always decodes). */
  private decode(key: string, buf: Buffer): unknown {
    try {
      return decodeValue(buf);
    } catch (err) {
      throw localCorruption(this.dir, `the value of ${JSON.stringify(key)} does not decode: ${(err as Error).message}`, { cause: err });
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new CairnError('INTERNAL', `partition state ${this.dir} is closed`);
  }
}
