import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { copyFile, mkdir, open, rename, rmdir, stat, unlink, utimes } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CairnError } from '../../core/errors.js';
import { FS_STORE_DEFAULTS } from '../../core/defaults.js';
import { sha256File } from '../../core/checksums.js';
import { failpoint } from '../../core/failpoints.js';
import { acquireFileLock } from './lock.js';
import { FS_CAPABILITIES, fsUrl, type FsObjectStoreOptions } from './options.js';
import { fsOp, mapFsError, notFound } from './errors.js';
import { cloneAndSync, compareStrings, etagOf, exists, forEachLimit, fsyncDir, readEntries, shortName, statLocal, statOrUndefined, unlinkQuiet } from './files.js';
import { AbstractObjectStore, clampRange } from '../base.js';
import { localError } from '../transfer.js';
import { RESERVED_SEGMENT_PREFIX, throwIfAborted, validateKey } from '../keys.js';
import type { CopyOptions, DownloadOptions, DownloadResult, GetOptions, GetResult, ObjectInfo, PutOptions, PutResult, StoreCapabilities, UploadOptions, UploadResult } from '../types.js';


const TMP = `${RESERVED_SEGMENT_PREFIX}tmp-`;
const LOCK = `${RESERVED_SEGMENT_PREFIX}lock-`;

/**
 * The embedded default store: one file per object under a root folder.
 *
 * Every mutation writes a temporary file beside its target first (same folder, so the
 * rename is atomic), fsyncs it, then — holding the key's lock — checks preconditions,
 * renames and fsyncs the folder. Readers therefore see the old or the new object, never a
 * torn one, and conditional writes are linearisable between processes on this machine.
 */
export type { FsObjectStoreOptions } from './options.js';

export class FsObjectStore extends AbstractObjectStore {
  readonly capabilities: StoreCapabilities = FS_CAPABILITIES;
  readonly url: string;
  readonly root: string;
  private readonly lockTimeoutMs: number;
  /** Same-process writers queue here instead of polling the lock file. */
  private readonly inProcess = new Map<string, Promise<void>>();

  constructor(options: FsObjectStoreOptions | string) {
    super();
    const o = typeof options === 'string' ? { root: options } : options;
    this.root = resolve(o.root);
    this.url = fsUrl(this.root);
    this.lockTimeoutMs = o.lockTimeoutMs ?? FS_STORE_DEFAULTS.lockTimeoutMs;
  }

  /** The file that holds `key` (validated). */
  pathOf(key: string): string {
    return join(this.root, ...validateKey(key).split('/'));
  }

  /** The lock file guarding writes to `key`; public so tests can plant a stale one. */
  lockPathOf(key: string): string {
    const path = this.pathOf(key);
    return join(dirname(path), `${LOCK}${shortName(path.slice(dirname(path).length + 1))}`);
  }

  protected async _get(key: string, options: GetOptions): Promise<GetResult> {
    const path = this.pathOf(key);
    return fsOp('get', key, async () => {
      const fh = await open(path, 'r');
      try {
        // fstat on the open descriptor: the ETag describes exactly the bytes we read.
        const st = await fh.stat({ bigint: true });
        if (!st.isFile()) throw notFound(key);
        const size = Number(st.size);
        const { start, end } = options.range ? clampRange(options.range, size, key) : { start: 0, end: size };
        const body = Buffer.allocUnsafe(end - start);
        let done = 0;
        while (done < body.length) {
          const { bytesRead } = await fh.read(body, done, body.length - done, start + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return { body: done === body.length ? body : body.subarray(0, done), etag: etagOf(st) };
      } finally {
        await fh.close();
      }
    });
  }

  protected async _head(key: string): Promise<ObjectInfo> {
    const path = this.pathOf(key);
    return fsOp('head', key, async () => {
      const st = await stat(path, { bigint: true });
      if (!st.isFile()) throw notFound(key);
      return { key, size: Number(st.size), etag: etagOf(st) };
    });
  }

  protected async _put(key: string, data: Buffer, options: PutOptions): Promise<PutResult> {
    const path = this.pathOf(key);
    return fsOp('put', key, async () => {
      const tmp = await this.writeTemp(path, async (t) => {
        const fh = await open(t, 'wx');
        try {
          await fh.writeFile(data);
          await fh.sync();
        } finally {
          await fh.close();
        }
      });
      const { etag } = await this.commit(key, path, tmp, options);
      return { etag };
    }, true);
  }

  protected override async _uploadFile(key: string, path: string, options: UploadOptions): Promise<UploadResult> {
    const target = this.pathOf(key);
    return fsOp('uploadFile', key, async () => {
      await statLocal(path);
      const tmp = await this.writeTemp(target, (t) => cloneAndSync(path, t));
      throwIfAborted(options.signal, `upload ${key}`);
      const result = await this.commit(key, target, tmp);
      options.onBytes?.(result.size);
      return result;
    }, true);
  }

  protected override async _downloadFile(key: string, path: string, options: DownloadOptions): Promise<DownloadResult> {
    const source = this.pathOf(key);
    return fsOp('downloadFile', key, async () => {
      const st = await stat(source);
      if (!st.isFile()) throw notFound(key);
      // A reflink where the filesystem has them (instant), else an in-kernel copy. The
      // caller fsyncs what it installs, so no fsync here.
      await copyFile(source, path, fsc.COPYFILE_FICLONE).catch(async (err: NodeJS.ErrnoException) => {
        // Tell a vanished object apart from a missing destination folder.
        if (err.code === 'ENOENT' && (await exists(source))) throw localError(err, path);
        throw err;
      });
      const size = (await stat(path)).size;
      options.onBytes?.(size);
      return { size };
    });
  }

  protected override async _copy(from: string, to: string, options: CopyOptions): Promise<PutResult> {
    const source = this.pathOf(from);
    const target = this.pathOf(to);
    const expect = options.expect;
    if (from === to) {
      const { etag } = await this._head(from);
      if (expect?.sha256 !== undefined) checkSha256(from, (await sha256File(source)).sha256, expect.sha256);
      return { etag };
    }
    return fsOp('copy', from, async () => {
      const st = await statOrUndefined(source);
      if (!st?.isFile()) throw notFound(from);
      if (expect?.etag !== undefined && etagOf(st) !== expect.etag) {
        throw new CairnError('CORRUPT', `copy ${from}: the object changed since it was recorded (ETag); not copied`, { details: { key: from } });
      }
      const tmp = await this.writeTemp(target, async (t) => {
        await cloneAndSync(source, t).catch(async (err: NodeJS.ErrnoException) => {
          // The source vanished between our stat and the copy.
          if (err.code === 'ENOENT' && !(await exists(source))) throw notFound(from);
          throw err;
        });
        // Hash what landed, not the source: these are exactly the bytes the new object holds.
        if (expect?.sha256 !== undefined) checkSha256(from, (await sha256File(t)).sha256, expect.sha256);
      });
      return { etag: (await this.commit(to, target, tmp)).etag };
    }, true);
  }

  protected async _delete(keys: string[]): Promise<void> {
    const paths = keys.map((k) => [k, this.pathOf(k)] as const);
    await forEachLimit(paths, 16, async ([key, path]) =>
      fsOp('delete', key, async () => {
        // Nothing there: nothing to lock (and no lock folder to create).
        if (!(await statOrUndefined(path))?.isFile()) return;
        await this.withKeyLock(key, async () => {
          try {
            await unlink(path);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            // Absent keys are not an error; a folder at the key is not an object either.
            if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EISDIR' && code !== 'EPERM') throw err;
          }
        });
        await this.pruneEmptyParents(dirname(path));
      }, true),
    );
  }

  protected async *_list(prefix: string): AsyncIterable<ObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    yield* this.walk(slash < 0 ? '' : prefix.slice(0, slash + 1), prefix);
  }

  protected override async _listFolders(prefix: string): Promise<string[]> {
    const entries = await readEntries(join(this.root, prefix));
    const folders: string[] = [];
    for (const e of entries) {
      // Match S3: a folder exists only while some object lives below it.
      if (e.isDir && (await this.hasObject(`${prefix}${e.name}/`))) folders.push(e.name);
    }
    return folders.sort(compareStrings);
  }

  /** Depth-first over sorted entries; folders sort as `name/`, which yields key order. */
  private async *walk(relDir: string, prefix: string): AsyncGenerator<ObjectInfo> {
    const entries = await readEntries(join(this.root, relDir));
    for (const e of entries) {
      const key = `${relDir}${e.name}`;
      if (e.isDir) {
        const sub = `${key}/`;
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) yield* this.walk(sub, prefix);
      } else if (key.startsWith(prefix)) {
        try {
          const st = await stat(join(this.root, key), { bigint: true });
          if (st.isFile()) yield { key, size: Number(st.size), etag: etagOf(st) };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw mapFsError(err, 'list', key);
        }
      }
    }
  }

  private async hasObject(relDir: string): Promise<boolean> {
    for await (const _ of this.walk(relDir, relDir)) return true;
    return false;
  }

  /** Writes a temp file beside `target` via `fill`, retrying if a delete pruned the folder. */
  private async writeTemp(target: string, fill: (tmp: string) => Promise<void>): Promise<string> {
    const dir = dirname(target);
    for (let i = 0; ; i++) {
      const tmp = join(dir, `${TMP}${randomBytes(8).toString('hex')}`);
      try {
        await mkdir(dir, { recursive: true });
        await fill(tmp);
        return tmp;
      } catch (err) {
        await unlinkQuiet(tmp);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && i < 5 && !(await exists(dir))) continue;
        throw err;
      }
    }
  }

  /** Under the key's lock: check preconditions, rename the temp into place, fsync the folder. */
  private async commit(key: string, target: string, tmp: string, cond?: PutOptions): Promise<{ etag: string; size: number }> {
    try {
      return await this.withKeyLock(key, async () => {
        const current = await statOrUndefined(target);
        if (current && !current.isFile()) throw new CairnError('STORE_FAILED', `cannot write ${key}: a folder exists at that key`);
        if (cond?.ifNoneMatch === '*' && current) {
          throw new CairnError('CONDITION_FAILED', `put ${key}: object exists (If-None-Match: *)`, { details: { key } });
        }
        if (cond?.ifMatch !== undefined && (!current || etagOf(current) !== cond.ifMatch)) {
          throw new CairnError('CONDITION_FAILED', `put ${key}: ETag does not match`, { details: { key, expected: cond.ifMatch } });
        }
        // Between the check and the rename: however long a writer pauses here, the lock it
        // holds is not broken while it lives, so no other write can slip in between.
        if (cond?.ifMatch !== undefined) failpoint('fs-conditional-put:checked');
        let st = await stat(tmp, { bigint: true });
        // ETags are ino-size-mtime. Keeping mtime strictly increasing per key means a reused
        // inode with the same size inside one clock tick can never repeat an older ETag.
        if (current && st.mtimeNs <= current.mtimeNs) {
          const next = Number(current.mtimeNs + 1_000_000n) / 1e9;
          await utimes(tmp, next, next);
          st = await stat(tmp, { bigint: true });
        }
        await rename(tmp, target);
        await fsyncDir(dirname(target));
        return { etag: etagOf(st), size: Number(st.size) };
      });
    } catch (err) {
      await unlinkQuiet(tmp);
      throw err;
    }
  }

  private async withKeyLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.inProcess.get(key) ?? Promise.resolve();
    let done!: () => void;
    const gate = new Promise<void>((r) => (done = r));
    const mine = previous.then(() => gate);
    this.inProcess.set(key, mine);
    await previous;
    try {
      const lockPath = this.lockPathOf(key);
      await mkdir(dirname(lockPath), { recursive: true });
      const release = await acquireFileLock(lockPath, { timeoutMs: this.lockTimeoutMs });
      try {
        return await fn();
      } finally {
        await release();
      }
    } finally {
      done();
      if (this.inProcess.get(key) === mine) this.inProcess.delete(key);
    }
  }

  private async pruneEmptyParents(dir: string): Promise<void> {
    // Best effort: a concurrent writer recreates what it needs (see writeTemp).
    while (dir.length > this.root.length && dir.startsWith(this.root)) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = dirname(dir);
    }
  }
}

function checkSha256(key: string, actual: string, expected: string): void {
  if (actual !== expected) {
    throw new CairnError('CORRUPT', `copy ${key}: its bytes no longer hash to the recorded sha256; not copied`, { details: { key, expected, actual } });
  }
}

export { etagOf } from './files.js';
