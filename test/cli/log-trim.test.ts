import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, jsonOf, runCli, tempDir } from '../helpers/cli.js';

/**
 * `cairn log trim --before N` by hand follows the coordinator's rule (issue 11): records up
 * to the archived LSN (the oldest retained snapshot) may go, so N may be at most archived + 1;
 * with no snapshot nothing may go. `--force` overrides, `--dry-run` only shows the decision.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');

async function setup() {
  const cwd = tempDir('cairn-log-trim-');
  writeFileSync(join(cwd, 'events.jsonl'), toJsonl(bankEvents(300, 41)));
  const cli = (...args: string[]) => runCli(args, { cwd });
  for (const p of ['p0', 'p1']) expect((await cli('log', 'append', '--partition', p, '--jsonl', 'events.jsonl')).code).toBe(0);
  const start = async (p = 'p0') => jsonOf(await cli('--json', 'log', 'info', '--partition', p)).start as number;
  return { cwd, cli, start };
}

const errorLine = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('cairn: error:'));

describe('cairn log trim', () => {
  it('refuses to trim past archived + 1, naming both numbers; --dry-run shows it; --force trims anyway', async () => {
    const { cli, start } = await setup();
    // One snapshot, at LSN 199: archived + 1 = 200.
    const run = await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--until-lsn', '199', '--snapshot-every', '0', '--checkpoint-on-exit');
    expect(jsonOf(run).snapshots.map((s: { metadata: { lsn: number } }) => s.metadata.lsn)).toEqual([199]);

    const refused = await cli('log', 'trim', '--partition', 'p0', '--before', '250');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    const [line, ...more] = errorLine(refused.stderr);
    expect(more).toEqual([]);
    expect(line).toMatch(/250.*--before 200.*\[CONDITION_FAILED\]$/);
    expect(await start()).toBe(0);

    const asJson = await cli('--json', 'log', 'trim', '--partition', 'p0', '--before', '250');
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ error: { code: 'CONDITION_FAILED', details: { partition: 'p0', requested: 250, safeBefore: 200, archivedLsn: 199, logStart: 0, logEnd: 300 } } });
    expect(await start()).toBe(0);

    // A dry run shows the decision and trims nothing, allowed or not.
    const dry = jsonOf(await cli('--json', 'log', 'trim', '--partition', 'p0', '--before', '250', '--dry-run'));
    expect(dry).toMatchObject({ partition: 'p0', dryRun: true, requested: 250, archivedLsn: 199, safeBefore: 200, allowed: false, wouldTrim: false, removes: { from: 0, to: 249, count: 250 }, log: { start: 0, end: 300 } });
    expect(dry.reason).toMatch(/199/);
    const dryHuman = await cli('log', 'trim', '--partition', 'p0', '--before', '250', '--dry-run');
    expect(dryHuman.code, dryHuman.stderr).toBe(0);
    expect(dryHuman.stdout).toMatch(/refused/);
    expect(jsonOf(await cli('--json', 'log', 'trim', '--partition', 'p0', '--before', '150', '--dry-run'))).toMatchObject({ allowed: true, wouldTrim: true, removes: { from: 0, to: 149, count: 150 } });
    expect(jsonOf(await cli('--json', 'log', 'trim', '--partition', 'p0', '--before', '250', '--dry-run', '--force'))).toMatchObject({ allowed: false, wouldTrim: true });
    expect(await start()).toBe(0);

    // Up to archived + 1 is allowed.
    expect(jsonOf(await cli('--json', 'log', 'trim', '--partition', 'p0', '--before', '200'))).toMatchObject({ start: 200, end: 300, allowed: true });
    // Past it only with --force.
    const forced = await cli('--json', 'log', 'trim', '--partition', 'p0', '--before', '250', '--force');
    expect(jsonOf(forced)).toMatchObject({ start: 250, end: 300, allowed: false, forced: true });
    expect(forced.stderr).toMatch(/forced trim/);
    expect(await start()).toBe(250);
  });

  it('the archived LSN is the oldest retained snapshot, as the coordinator reads it', async () => {
    const { cli, start } = await setup();
    for (const until of ['199', '299']) {
      const run = await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--until-lsn', until, '--snapshot-every', '0', '--checkpoint-on-exit');
      expect(run.code, run.stderr).toBe(0);
    }
    // Snapshots at 199 and 299 are retained: the newest would allow 300, the archive 200.
    const r = await cli('log', 'trim', '--partition', 'p0', '--before', '300');
    expect(r.code).toBe(1);
    expect(errorLine(r.stderr)[0]).toMatch(/300.*--before 200/);
    expect(await start()).toBe(0);
  });

  it('with no snapshot at all, only a trim that removes nothing is allowed', async () => {
    const { cli, start } = await setup();
    const r = await cli('--json', 'log', 'trim', '--partition', 'p1', '--before', '1');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'CONDITION_FAILED', details: { requested: 1, safeBefore: 0, archivedLsn: null } } });
    expect(await start('p1')).toBe(0);
    expect(jsonOf(await cli('--json', 'log', 'trim', '--partition', 'p1', '--before', '0'))).toMatchObject({ start: 0, end: 300, allowed: true });
  });
});
