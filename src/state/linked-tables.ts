import { mkdir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError } from '../core/errors.js';
import { linkOrCopy } from '../core/files.js';
import { tableFileName } from './manifest.js';
import type { CapturedFile } from './types.js';

/**
 * Hard links to the tables of recent checkpoint captures, kept between captures in one
 * folder inside the LevelDB folder (LevelDB ignores names it did not write).
 *
 * Why: a capture must hold every live table before the apply loop resumes, or a
 * compaction may delete one. Linking all of them each time makes the pause grow with the
 * state (~500 links per GiB). A table is immutable, so a link made for an earlier capture
 * still holds its exact bytes; a capture only links the tables that are new since then,
 * and the pause tracks what changed.
 *
 * Valid for one open database only: within it LevelDB never reuses a file number, across
 * opens (a crash that lost the MANIFEST tail, a restore of another lineage) it may. The
 * owner clears the folder when it opens and closes the database.
 */
export class TableVanished extends Error {}

interface Linked {
  size: number;
  /** Unreleased captures that list this table. */
  refs: number;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class LinkedTables {
  private readonly tables = new Map<string, Linked>();
  /** The newest capture's tables: kept after its release, they are the next one's base. */
  private newest = new Set<string>();
  /** Unlinks in flight, so a capture never links a name that is still being removed. */
  private readonly unlinking = new Map<string, Promise<void>>();
  private outstanding = 0;
  private created: Promise<unknown> | undefined;

  constructor(readonly dir: string) {}

  /** Removes whatever an earlier owner of the database left (call while holding its LOCK). */
  async reset(): Promise<void> {
    this.tables.clear();
    this.newest.clear();
    this.created = undefined;
    await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * A link to table `number` of `dbDir` with the size the MANIFEST records: the one made
   * earlier, or a new one. Throws TableVanished when the database no longer has it.
   */
  async ensure(dbDir: string, number: number, expectedSize: number): Promise<CapturedFile> {
    for (const ext of ['ldb', 'sst'] as const) {
      const name = tableFileName(number, ext);
      const path = join(this.dir, name);
      const known = this.tables.get(name);
      if (known) {
        if (known.size !== expectedSize) throw sizeMismatch(name, known.size, expectedSize);
        return { name, path, size: known.size };
      }
      await this.unlinking.get(name);
      if (!(await this.linkFresh(join(dbDir, name), path))) continue;
      const { size } = await stat(path);
      if (size !== expectedSize) throw sizeMismatch(name, size, expectedSize);
      this.tables.set(name, { size, refs: 0 });
      return { name, path, size };
    }
    throw new TableVanished(tableFileName(number));
  }

  /**
   * Marks `names` as used by a capture and as the base for the next one. The returned
   * function releases them; tables no capture needs any more are unlinked then.
   */
  hold(names: readonly string[]): () => Promise<void> {
    for (const name of names) this.tables.get(name)!.refs++;
    this.newest = new Set(names);
    this.outstanding++;
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      this.outstanding--;
      for (const name of names) {
        const t = this.tables.get(name);
        if (t) t.refs--;
      }
      await this.prune();
    };
  }

  /** On close: nothing is left to reuse; keep the folder only while a capture still reads it. */
  async dispose(): Promise<void> {
    if (this.outstanding === 0) await this.reset();
  }

  private async prune(): Promise<void> {
    const drop = [...this.tables].filter(([name, t]) => t.refs === 0 && !this.newest.has(name)).map(([name]) => name);
    await Promise.all(
      drop.map((name) => {
        this.tables.delete(name);
        const done = unlink(join(this.dir, name))
          .catch((err: unknown) => {
            if (errno(err) !== 'ENOENT') throw err;
          })
          .finally(() => this.unlinking.delete(name));
        this.unlinking.set(name, done);
        return done;
      }),
    );
  }

  /** false when the source does not exist; replaces a stale link an interrupted call left. */
  private async linkFresh(from: string, to: string): Promise<boolean> {
    this.created ??= mkdir(this.dir, { recursive: true });
    await this.created;
    for (let attempt = 0; ; attempt++) {
      try {
        await linkOrCopy(from, to);
        return true;
      } catch (err) {
        const code = errno(err);
        if (code === 'ENOENT') return false;
        if (code === 'EEXIST' && attempt === 0) {
          await unlink(to);
          continue;
        }
        throw err;
      }
    }
  }
}

function sizeMismatch(name: string, size: number, expected: number): CairnError {
  return new CairnError('CORRUPT', `table ${name} is ${size} bytes but the MANIFEST records ${expected}`);
}
