import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { linkOrCopy } from '../core/files.js';
import { liveness, type ProcessIdentity } from '../core/process-identity.js';
import { restoreWorkName, restoreWorkOwner } from '../state/state-folder.js';

/**
 * The folder a restore works in, beside its target: `.{target}.restore-{random}/`, holding
 * one `attempt-N/` per snapshot tried and a `verified/` cache of files whose size and sha256
 * already checked out, by sha256. Later attempts — a fallback to another retained snapshot,
 * or a newer snapshot after latest.json moved on — link those instead of downloading them
 * again (unchanged tables are the same bytes in every snapshot that carries them).
 *
 * Its name carries its owner (`.{target}.restore-{pid}-{start time}-{random}`), so it exists
 * with its owner or not at all: a restore killed at any point leaves a folder that the next
 * restore beside the same target (or the processor that owns it) recognises as abandoned and
 * removes, while a folder whose owner still runs is never touched. State folders are local
 * disks, so the owner is judged on this host. A processor refuses to open its state while
 * another live process has a work folder beside it (state-folder.ts).
 */
/** A work folder whose name does not say its owner (an older version's) is left this long. */
const OWNERLESS_GRACE_MS = 10 * 60_000;

export class RestoreWorkdir {
  private attempts = 0;
  private readonly verified = new Map<string, string>();

  private constructor(readonly path: string) {}

  static async create(target: string): Promise<RestoreWorkdir> {
    await mkdir(dirname(target), { recursive: true });
    await removeAbandonedRestores(target);
    const path = join(dirname(target), restoreWorkName(target));
    await mkdir(join(path, 'verified'), { recursive: true });
    return new RestoreWorkdir(path);
  }

  /** A fresh, empty folder for the next snapshot to be assembled in. */
  async nextAttempt(): Promise<string> {
    const dir = join(this.path, `attempt-${++this.attempts}`);
    await mkdir(dir);
    return dir;
  }

  /**
   * Puts an already verified file with this sha256 and size at `path`, if there is one.
   * LevelDB never rewrites a file in place, so a link shared with the cache stays intact.
   */
  async reuse(sha256: string, size: number, path: string): Promise<boolean> {
    const cached = this.verified.get(sha256);
    if (!cached || (await stat(cached)).size !== size) return false;
    await linkOrCopy(cached, path);
    return true;
  }

  /** Remembers a file whose size and sha256 were just checked. */
  async remember(sha256: string, path: string): Promise<void> {
    if (this.verified.has(sha256)) return;
    const cached = join(this.path, 'verified', sha256);
    await linkOrCopy(path, cached);
    this.verified.set(sha256, cached);
  }

  async dispose(): Promise<void> {
    await rm(this.path, { recursive: true, force: true });
  }
}

/**
 * Removes what killed restores left beside `target`: work folders whose owner is gone (all
 * of them when the caller holds `target`, as a processor that opened its partition does), and
 * `{target}.old-*` folders a swap had set aside. Only names a restore makes are considered.
 */
export async function removeAbandonedRestores(target: string, options: { owned?: boolean } = {}): Promise<string[]> {
  const parent = dirname(target);
  const base = basename(target);
  const names = await readdir(parent).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const path = join(parent, name);
    const owner = restoreWorkOwner(target, name);
    const abandoned = owner !== undefined ? options.owned || (await ownerGone(owner, path)) : name.startsWith(`${base}.old-`) && /^[0-9a-f]{8}$/.test(name.slice(base.length + 5));
    if (!abandoned) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}

async function ownerGone(owner: ProcessIdentity | null, path: string): Promise<boolean> {
  if (owner) return liveness(owner) === 'dead';
  const st = await stat(path).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs > OWNERLESS_GRACE_MS;
}
