import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

/**
 * `cairn demo --dir D` wipes D first, so it must only ever wipe a folder it made itself (or
 * an empty one); bad --records values are usage errors; and a finished demo leaves no
 * staged checkpoint behind.
 */

/** `.staging` folders under `dir` that still hold a capture's staging folder. */
function stagingLeftovers(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isDirectory() && e.parentPath.endsWith('.staging'))
    .map((e) => join(e.parentPath, e.name).slice(dir.length));
}

describe('cairn demo --dir', () => {
  it('refuses a non-empty folder that is not an earlier demo\'s, untouched; reruns in its own folder; leaves no staged checkpoint', async () => {
    const cwd = tempDir('cairn-demo-safety-');
    mkdirSync(join(cwd, 'mine'));
    writeFileSync(join(cwd, 'mine', 'thesis.tex'), 'chapter 1\n');
    const refused = await runCli(['demo', '--dir', 'mine', '--records', '200'], { cwd });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/\[BAD_INPUT\]$/m);
    expect(readdirSync(join(cwd, 'mine'))).toEqual(['thesis.tex']);
    expect(readFileSync(join(cwd, 'mine', 'thesis.tex'), 'utf8')).toBe('chapter 1\n');

    // A fresh folder, then the same folder again (recognised by its marker), then a demo
    // folder as versions before the marker left it: each run replaces the one before.
    for (let run = 0; run < 3; run++) {
      if (run === 2) rmSync(join(cwd, 'd', 'cairn-demo.json'));
      const r = await runCli(['--json', 'demo', '--dir', 'd', '--records', '200'], { cwd });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ statesEqual: true, records: 250 });
      expect(stagingLeftovers(join(cwd, 'd'))).toEqual([]);
    }
    expect(existsSync(join(cwd, 'd', 'node-a', 'p0', 'CURRENT'))).toBe(true);
  });

  it.each([['0'], ['abc'], ['-5'], ['1.5']])('--records %s is exit 2 naming the flag, and creates nothing', async (records) => {
    const cwd = tempDir('cairn-demo-records-');
    const r = await runCli(['demo', '--dir', 'd', '--records', records], { cwd });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--records/);
    expect(readdirSync(cwd)).toEqual([]);
  });
});
