import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test as base } from 'vitest';

/**
 * What the test files share instead of keeping their own copies: temp folders as vitest
 * fixtures (made on first use, removed after the test however it ends) and one `expectCode`.
 *
 *   import { it, expectCode } from '../helpers/fixtures.js';
 *   it('...', async ({ tmp }) => { ... });             // one fresh folder
 *   it('...', async ({ tempDir }) => { await tempDir(); await tempDir('other'); ... });
 */

/**
 * A fresh folder `cairn-{label}-XXXXXX` under the OS temp dir, for set-up outside a test
 * (beforeAll, conformance factories): whoever makes it removes it (removeDir). Inside a test,
 * take the `tmp` or `tempDir` fixture instead.
 */
export async function makeTempDir(label = 'test'): Promise<string> {
  return mkdtemp(join(tmpdir(), `cairn-${label}-`));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

export interface TempFixtures {
  /** A fresh empty folder for this test; removed after it (after its afterEach hooks). */
  tmp: string;
  /** Makes fresh folders (label defaults to the test file's name); all removed after the test. */
  tempDir: (label?: string) => Promise<string>;
}

/** `cairn-capture-` for test/state/capture.test.ts: the folder says which file left it. */
function fileLabel(file: string | undefined): string {
  return file ? basename(file).replace(/\.test\.ts$/, '').replace(/[^A-Za-z0-9-]/g, '-') : 'test';
}

export const test = base.extend<TempFixtures>({
  tempDir: async ({ task }, use) => {
    const made: string[] = [];
    const label = fileLabel(task.file?.name);
    try {
      await use(async (name = label) => {
        const dir = await makeTempDir(name);
        made.push(dir);
        return dir;
      });
    } finally {
      for (const dir of made) await removeDir(dir);
    }
  },
  tmp: async ({ tempDir }, use) => {
    await use(await tempDir());
  },
});

export const it = test;

export { expectCode } from '../../src/testing/assertions.js';
