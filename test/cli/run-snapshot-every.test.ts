import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, jsonOf, runCli, tempDir } from '../helpers/cli.js';
import { listTree, writeConfig } from '../helpers/runtime-harness.js';

/** `snapshots.everyRecords: 0` and `cairn run --snapshot-every 0` mean: never by record count. */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');

async function setup(everyRecords: number) {
  const cwd = tempDir('cairn-snapshot-every-');
  writeConfig(cwd, { snapshots: { everyRecords, retain: 2, concurrency: 4 }, runtime: { batchSize: 10, onBadRecord: 'stop' } });
  writeFileSync(join(cwd, 'events.jsonl'), toJsonl(bankEvents(300, 21)));
  const cli = (...args: string[]) => runCli(args, { cwd });
  expect((await cli('log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl')).code).toBe(0);
  const run = async (...extra: string[]) => jsonOf(await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end', ...extra));
  return { cwd, cli, run };
}

describe('snapshots by record count turned off', () => {
  it('everyRecords 0 in the config file: 300 records applied, no snapshot', async () => {
    const { cwd, run } = await setup(0);
    expect(await run()).toMatchObject({ appliedLsn: 299, recordsApplied: 300, snapshots: [] });
    expect(listTree(join(cwd, '.cairn', 'store'))).toEqual([]);
  });

  it('--snapshot-every 0 overrides the config; --snapshot-every N still snapshots', async () => {
    const { cwd, cli, run } = await setup(50);
    expect(await run('--snapshot-every', '0')).toMatchObject({ appliedLsn: 299, snapshots: [] });
    expect(listTree(join(cwd, '.cairn', 'store'))).toEqual([]);

    // The control: the same run with a count does snapshot.
    expect((await cli('log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl')).code).toBe(0);
    const counted = await run('--snapshot-every', '100');
    expect(counted.appliedLsn).toBe(599);
    expect(counted.snapshots.length).toBeGreaterThan(0);
  });
});
