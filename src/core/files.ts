import { constants as fsc } from 'node:fs';
import { copyFile, link } from 'node:fs/promises';

/**
 * A hard link, or a copy (a reflink where the filesystem has them) when links are not
 * possible (another filesystem, no permission). Callers use it only for files that are never
 * rewritten in place — LevelDB tables, logs and manifests, verified downloads — so a link is
 * as good as a copy and costs nothing.
 */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM') throw err;
    await copyFile(from, to, fsc.COPYFILE_FICLONE);
  }
}
