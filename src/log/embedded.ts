import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { CairnError, badInput } from '../core/errors.js';
import { PARTITION_NAME, parseLsn, validatePartition } from '../core/names.js';
import { decodeStoredRecord, encodeStoredRecord } from './embedded-format.js';
import { checkAppendRecord } from './records.js';
import { Wakeup } from './wakeup.js';
import type { AppendRecord, Log, LogCapabilities, LogInfo, LogRecord, ReadOptions } from './types.js';

/**
 * The embedded log: one LevelDB per partition under `dir/<partition>/`, for a single
 * process (LevelDB's LOCK file admits one opener; a second gets LOG_BUSY).
 *
 * Keys: 'r' + the LSN as 16 zero-padded decimal digits (Number.MAX_SAFE_INTEGER has 16), so
 * byte order is LSN order; 'm:start' holds the first retained LSN. The end is derived at
 * open from the last record (or equals start when everything was trimmed), so LSNs are
 * never reused after a trim. Values: the frame of embedded-format.ts.
 */

const RECORD_PREFIX = 'r';
const META_START = 'm:start';
const LSN_DIGITS = 16;

const recordKey = (lsn: number): string => RECORD_PREFIX + String(lsn).padStart(LSN_DIGITS, '0');

export interface EmbeddedLogOptions {
  /** Folder holding one LevelDB per partition. */
  dir: string;
  /**
   * fsync each append. Default false: an append then survives the process being killed but
   * not a power loss (LevelDB's write-ahead log is written, not fsynced).
   */
  sync?: boolean;
}

/** One open partition: its database, cached bounds, a write lock and read waiters. */
class PartitionLog {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly wakeup = new Wakeup();

  constructor(
    readonly db: ClassicLevel<string, Buffer>,
    public start: number,
    public end: number,
  ) {}

  /** Runs `fn` after every earlier exclusive section: appends and trims are serialized. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  notify(): void {
    this.wakeup.notify();
  }

  /** Resolves on the next append, after `ms`, on abort, or when the log closes. */
  waitForAppend(ms: number, signal?: AbortSignal): Promise<void> {
    return this.wakeup.wait(ms, signal);
  }
}

export class EmbeddedLog implements Log {
  readonly capabilities: LogCapabilities = { name: 'embedded', multiProcess: false, groups: false };
  private readonly dir: string;
  private readonly sync: boolean;
  private readonly openPartitions = new Map<string, Promise<PartitionLog>>();
  private closed = false;

  constructor(options: EmbeddedLogOptions) {
    this.dir = resolve(options.dir);
    this.sync = options.sync ?? false;
  }

  source(partition: string): string {
    return `embedded:${validatePartition(partition)}`;
  }

  async partitions(): Promise<string[]> {
    const entries = await readdir(this.dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw new CairnError('LOG_UNAVAILABLE', `cannot list embedded log ${this.dir}: ${err.message}`, { cause: err, retryable: false });
    });
    return entries.filter((e) => e.isDirectory() && PARTITION_NAME.test(e.name)).map((e) => e.name).sort();
  }

  async append(partition: string, records: AppendRecord[]): Promise<{ first: number; last: number }> {
    if (!Array.isArray(records)) throw badInput('append expects an array of records');
    // Encode everything before touching the database: a bad record fails the whole call.
    const now = Date.now();
    const encoded = records.map((r, i) => encodeStoredRecord(checkAppendRecord(r, i, now)));
    const p = await this.partition(partition);
    return p.exclusive(async () => {
      const first = p.end;
      if (encoded.length === 0) return { first, last: first - 1 };
      const batch = p.db.batch();
      encoded.forEach((value, i) => batch.put(recordKey(first + i), value));
      await batch.write({ sync: this.sync });
      p.end = first + encoded.length;
      p.notify();
      return { first, last: p.end - 1 };
    });
  }

  async read(partition: string, fromLsn: number, options: ReadOptions): Promise<LogRecord[]> {
    const from = parseLsn(fromLsn, 'fromLsn');
    const max = options.maxRecords;
    if (!Number.isSafeInteger(max) || max < 1) throw badInput(`invalid maxRecords ${String(max)}: expected a positive integer`);
    const toLsn = options.toLsn === undefined ? undefined : parseLsn(options.toLsn, 'toLsn');
    const p = await this.partition(partition);
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      const upper = Math.min(toLsn ?? Number.MAX_SAFE_INTEGER, p.end - 1);
      const records: LogRecord[] = [];
      if (from <= upper) {
        for await (const [key, value] of p.db.iterator({ gte: recordKey(from), lte: recordKey(upper), limit: max })) {
          records.push(decodeStoredRecord(Number(key.slice(RECORD_PREFIX.length)), value));
        }
      }
      // Checked after reading: trim moves `start` before deleting, so if start is still
      // <= from now, the iterator's snapshot held every record from `from` on.
      if (from < p.start) {
        throw new CairnError('TRIM_GAP', `log ${partition} starts at LSN ${p.start}; LSN ${from} was trimmed`, {
          details: { requested: from, start: p.start },
        });
      }
      if (records.length > 0) return records;
      if (toLsn !== undefined && from > toLsn) return [];
      const remaining = deadline - Date.now();
      if (remaining <= 0 || options.signal?.aborted || this.closed) return [];
      await p.waitForAppend(remaining, options.signal);
      if (this.closed) return [];
    }
  }

  /**
   * Read-only: a partition nothing was appended to is empty ({0, 0}) and is not created —
   * no folder, no LevelDB — so inspecting a log (`cairn log info`, a coordinator, a worker
   * started before the first append) never changes it.
   */
  async info(partition: string): Promise<LogInfo> {
    const p = await this.existingPartition(partition);
    return p ? { start: p.start, end: p.end } : { start: 0, end: 0 };
  }

  async trim(partition: string, beforeLsn: number): Promise<LogInfo> {
    const before = parseLsn(beforeLsn, 'beforeLsn');
    // Trimming an empty partition moves nothing (the end clamps it): nothing to create either.
    const p = await this.existingPartition(partition);
    if (!p) return { start: 0, end: 0 };
    const target = await p.exclusive(async () => {
      const t = Math.min(before, p.end);
      if (t <= p.start) return undefined;
      // Move the start first (memory, then disk): readers see TRIM_GAP before any record
      // disappears, and a crash mid-delete leaves only invisible leftovers below start.
      p.start = t;
      await p.db.put(META_START, Buffer.from(String(t)), { sync: true });
      return t;
    });
    if (target !== undefined) {
      // From the first possible key, so leftovers of an interrupted trim go too. clear() is
      // LevelDB's native batched delete; compacting the range reclaims the space now.
      await p.db.clear({ gte: RECORD_PREFIX, lt: recordKey(target) });
      await p.db.compactRange(RECORD_PREFIX, recordKey(target));
    }
    return { start: p.start, end: p.end };
  }

  async close(): Promise<void> {
    this.closed = true;
    const opened = [...this.openPartitions.values()];
    this.openPartitions.clear();
    await Promise.all(
      opened.map(async (pending) => {
        const p = await pending.catch(() => undefined);
        if (!p) return;
        p.notify();
        await p.exclusive(() => p.db.close());
      }),
    );
  }

  /** The partition if it is open or exists on disk; undefined (nothing created) otherwise. */
  private async existingPartition(name: string): Promise<PartitionLog | undefined> {
    validatePartition(name);
    if (!this.closed && !this.openPartitions.has(name) && !existsSync(join(this.dir, name))) return undefined;
    return this.partition(name);
  }

  private partition(name: string): Promise<PartitionLog> {
    validatePartition(name);
    if (this.closed) return Promise.reject(new CairnError('ABORTED', 'the embedded log is closed'));
    let pending = this.openPartitions.get(name);
    if (!pending) {
      pending = this.openPartition(name);
      this.openPartitions.set(name, pending);
      // A failed open (e.g. LOG_BUSY) is not cached: the next call tries again.
      pending.catch(() => this.openPartitions.get(name) === pending && this.openPartitions.delete(name));
    }
    return pending;
  }

  private async openPartition(name: string): Promise<PartitionLog> {
    const location = join(this.dir, name);
    const db = new ClassicLevel<string, Buffer>(location, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new CairnError(
          'LOG_BUSY',
          `embedded log partition ${name} (${location}) is open in another process: the embedded log is single-process; stop the other process or use a Kafka log`,
          { cause: err, details: { partition: name, location } },
        );
      }
      throw new CairnError('LOG_UNAVAILABLE', `cannot open embedded log partition ${name} (${location}): ${cause?.message ?? (err as Error).message}`, {
        cause: err,
        retryable: false,
      });
    }
    const startText = await db.get(META_START);
    const start = startText === undefined ? 0 : Number(startText.toString('utf8'));
    let end = start;
    for await (const key of db.keys({ gte: RECORD_PREFIX, lt: 's', reverse: true, limit: 1 })) {
      end = Math.max(start, Number(key.slice(RECORD_PREFIX.length)) + 1);
    }
    return new PartitionLog(db, start, end);
  }
}
