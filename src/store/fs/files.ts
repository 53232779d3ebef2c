// Helpers of the filesystem store: ETags, sorted folder reads, durable copies, error mapping.
import { constants as fsc, type BigIntStats } from 'node:fs';
import { copyFile, open, readdir, stat, unlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { CairnError } from '../../core/errors.js';
import { RESERVED_SEGMENT_PREFIX } from '../keys.js';
import { localError } from '../transfer.js';
import { mapFsError } from './errors.js';

/** `ino-size-mtimeNs` (base 36): a stat call, no hashing, and it changes on every write. */
export function etagOf(st: BigIntStats): string {
  return `${st.ino.toString(36)}-${st.size.toString(36)}-${st.mtimeNs.toString(36)}`;
}

export interface Entry {
  name: string;
  isDir: boolean;
}

export async function readEntries(dir: string): Promise<Entry[]> {
  let dirents;
  try {
    dirents = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw mapFsError(err, 'list', dir);
  }
  return dirents
    .filter((d) => !d.name.startsWith(RESERVED_SEGMENT_PREFIX) && (d.isDirectory() || d.isFile()))
    .map((d) => ({ name: d.name, isDir: d.isDirectory() }))
    .sort((a, b) => compareStrings(a.isDir ? `${a.name}/` : a.name, b.isDir ? `${b.name}/` : b.name));
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Lock names must fit in 255 bytes; long object names are hashed to a short stand-in. */
export function shortName(name: string): string {
  if (Buffer.byteLength(name) <= 200) return name;
  return `h-${createHash('sha256').update(name).digest('hex')}`;
}

export async function cloneAndSync(source: string, tmp: string): Promise<void> {
  // COPYFILE_FICLONE: a reflink on btrfs/xfs/APFS, else a plain copy.
  await copyFile(source, tmp, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    // Some platforms cannot fsync a folder; the rename is still atomic there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await fh?.close();
  }
}

export async function statOrUndefined(path: string): Promise<BigIntStats | undefined> {
  try {
    return await stat(path, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export async function statLocal(path: string): Promise<void> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new CairnError('BAD_INPUT', `${path} is not a regular file`);
  } catch (err) {
    throw localError(err, path);
  }
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function unlinkQuiet(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
