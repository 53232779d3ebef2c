import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

/** A config naming what does not exist: exit 2, one line on stderr naming it. */
const two = { eu: { url: 'file://./eu' }, us: { url: 'file://./us' } };

describe('config errors on the command line', () => {
  it('the CLI exits 2 with one line naming the unknown store', async () => {
    const dir = tempDir('placement-cli-');
    const file = join(dir, 'cairn.config.json');
    writeFileSync(file, JSON.stringify({ stores: two, storageClasses: { GEO: { stores: ['eu', 'mars'] } } }));
    const r = await runCli(['--config', file, 'class', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('"mars"');
  });
});
