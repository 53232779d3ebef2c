import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { CairnError } from '../core/errors.js';
import { currentProcess, liveness, type ProcessIdentity } from '../core/process-identity.js';

/**
 * What a state folder is and who is using it, answered without opening it: a restore must
 * never replace a folder that is not Cairn state (a user's project folder), another
 * partition's state, or state a running processor holds.
 *
 * - Identity: `cairn-state.json` (`{format, partition}`), written by PartitionState.open for
 *   the partition it opens the folder as, and by a restore into the folder it installs.
 *   LevelDB ignores names it did not write, and checkpoints upload only LevelDB's files, so
 *   the marker stays local. The applied-LSN key inside LevelDB cannot serve: reading it means
 *   opening the database (which rewrites files and takes its lock), and a fork's state
 *   carries its parent's name there.
 * - In use: LevelDB holds an fcntl lock on `LOCK` while open, released by the kernel when
 *   the holder exits however it exits. It is probed through a hard link in a scratch folder
 *   (same inode, so the same lock) that holds nothing else, so LevelDB stops at "does not
 *   exist" when it gets the lock and never reads or writes the real folder.
 * - Being restored: restore work folders beside the target carry their owner in their name
 *   (`.{target}.restore-{pid}-{start}-{random}`); PartitionState.open refuses while one of
 *   another live process exists, after taking LevelDB's lock. A restore creates its work
 *   folder before it probes the lock, so of a processor starting and a restore replacing the
 *   folder at the same time, at least one sees the other and stops.
 */
export const STATE_MARKER = 'cairn-state.json';

interface Marker {
  format: 1;
  partition: string;
}

/** The partition a state folder was last opened or restored as; undefined without a readable marker. */
export async function readStateMarker(dir: string): Promise<string | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, STATE_MARKER), 'utf8')) as Partial<Marker>;
    return parsed.format === 1 && typeof parsed.partition === 'string' ? parsed.partition : undefined;
  } catch {
    return undefined;
  }
}

/** Records `partition` as the folder's owner (whole or not at all: written beside, then renamed). */
export async function writeStateMarker(dir: string, partition: string): Promise<void> {
  const path = join(dir, STATE_MARKER);
  const temp = `${path}.${randomBytes(4).toString('hex')}`;
  await writeFile(temp, JSON.stringify({ format: 1, partition } satisfies Marker));
  await rename(temp, path);
}

/** Folders this process has open through PartitionState: probing their lock here would release it. */
const openHere = new Set<string>();

export function noteOpened(dir: string): void {
  openHere.add(resolve(dir));
}

export function noteClosed(dir: string): void {
  openHere.delete(resolve(dir));
}

/**
 * Whether a process (this one included) has the LevelDB in `dir` open. The scratch folder is
 * named like the processor's own peeks (`.{name}.peek-{hex}`), which a processor removes
 * should this process die before it does — and may remove while we probe: LevelDB would then
 * recreate it with a fresh LOCK that nobody holds, so "not locked" counts only if the probed
 * LOCK is still the folder's own.
 */
export async function stateInUse(dir: string): Promise<boolean> {
  const location = resolve(dir);
  if (openHere.has(location)) return true;
  const lock = join(location, 'LOCK');
  const original = await stat(lock).catch(() => undefined);
  if (!original?.isFile()) return false; // never opened: nobody holds it
  for (let attempt = 0; attempt < 5; attempt++) {
    const probe = join(dirname(location), `.${basename(location)}.peek-${randomBytes(4).toString('hex')}`);
    try {
      await mkdir(probe);
      try {
        await link(lock, join(probe, 'LOCK'));
      } catch (err) {
        if (!LINK_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
        // No hard links here: open the folder itself (LevelDB takes its lock before it reads).
        return await lockedAt(location);
      }
      const locked = await lockedAt(probe);
      const probed = await stat(join(probe, 'LOCK')).catch(() => undefined);
      if (locked || probed?.ino === original.ino) return locked;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    } finally {
      await rm(probe, { recursive: true, force: true });
    }
  }
  throw new CairnError('STATE_UNAVAILABLE', `cannot tell whether ${location} is in use: its lock probe kept disappearing`, { details: { dir: location } });
}

const LINK_UNSUPPORTED = new Set(['EPERM', 'EXDEV', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

async function lockedAt(dir: string): Promise<boolean> {
  const db = new ClassicLevel(dir, { createIfMissing: false });
  try {
    await db.open();
    await db.close();
    return false;
  } catch (err) {
    return (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
  }
}

export type FolderKind =
  | { kind: 'absent' }
  | { kind: 'empty' }
  | { kind: 'not-a-folder' }
  /** Non-empty, without a marker: anything at all, a user's files included. */
  | { kind: 'other'; entries: number }
  | { kind: 'state'; partition: string };

/** What is at `dir`, from its listing and marker alone (nothing is opened or written). */
export async function inspectFolder(dir: string): Promise<FolderKind> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) return { kind: 'absent' };
  if (!st.isDirectory()) return { kind: 'not-a-folder' };
  const entries = await readdir(dir);
  if (entries.length === 0) return { kind: 'empty' };
  const partition = await readStateMarker(dir);
  return partition === undefined ? { kind: 'other', entries: entries.length } : { kind: 'state', partition };
}

/** `{pid}-{start}-{random}`, or an older version's `{random}` (no owner in the name). */
const WORK_SUFFIX = /^(?:(\d+)-(\d+)-[0-9a-f]{8}|[0-9a-f]{8})$/;

/** The name of a new restore work folder for `target`, owned by this process. */
export function restoreWorkName(target: string): string {
  const me = currentProcess();
  return `.${basename(target)}.restore-${me.pid}-${me.start ?? 0}-${randomBytes(4).toString('hex')}`;
}

/**
 * The owner a sibling of `target` named `name` records, if it is a restore work folder:
 * `null` for an ownerless one (an older version's), undefined for any other name.
 */
export function restoreWorkOwner(target: string, name: string): ProcessIdentity | null | undefined {
  const prefix = `.${basename(target)}.restore-`;
  if (!name.startsWith(prefix)) return undefined;
  const m = WORK_SUFFIX.exec(name.slice(prefix.length));
  if (!m) return undefined;
  if (m[1] === undefined) return null;
  return { host: currentProcess().host, pid: Number(m[1]), ...(m[2] === '0' ? {} : { start: m[2]! }) };
}

/** Restores into `target` run by other processes that are (or may be) still running. */
export async function restoresInProgress(target: string): Promise<Array<{ path: string; pid: number }>> {
  const parent = dirname(resolve(target));
  const found: Array<{ path: string; pid: number }> = [];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const owner = restoreWorkOwner(target, name);
    if (!owner || owner.pid === process.pid) continue;
    if (liveness(owner) !== 'dead') found.push({ path: join(parent, name), pid: owner.pid });
  }
  return found;
}
