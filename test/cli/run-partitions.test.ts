import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import type { AppendRecord } from '../../src/log/types.js';
import { bankModel, parseDump, toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, tempDir } from '../helpers/cli.js';

/**
 * `cairn run` with several --partition flags: one process, one processor per partition,
 * each with its own state and snapshots; a partition that fails stops alone.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');

async function setup(partitions: Record<string, AppendRecord[]>) {
  const cwd = tempDir('cairn-run-partitions-');
  writeFileSync(join(cwd, 'cairn.config.json'), JSON.stringify({ snapshots: { everyRecords: 500, retain: 2, concurrency: 4 }, runtime: { batchSize: 100, onBadRecord: 'stop' } }));
  const cli = (...args: string[]) => runCli(args, { cwd });
  for (const [p, events] of Object.entries(partitions)) {
    writeFileSync(join(cwd, `${p}.jsonl`), toJsonl(events));
    const r = await cli('log', 'append', '--partition', p, '--jsonl', `${p}.jsonl`);
    expect(r.code, r.stderr).toBe(0);
  }
  return { cwd, cli };
}

describe('cairn run with several partitions', () => {
  it('runs each partition with its own state and snapshots', async () => {
    const events = { p0: bankEvents(1200, 1), p1: bankEvents(800, 2), p7: bankEvents(300, 3) };
    const { cli } = await setup(events);
    const run = await cli('--json', 'run', '--partition', 'p0', '--partition', 'p1', '--partition', 'p7', '--processor', PROCESSOR, '--stop-at-end', '--checkpoint-on-exit');
    expect(run.code, run.stderr).toBe(0);
    const { partitions } = JSON.parse(run.stdout) as { partitions: Array<{ partition: string; appliedLsn: number; recordsApplied: number }> };
    expect(partitions.map((p) => [p.partition, p.appliedLsn, p.recordsApplied])).toEqual([
      ['p0', 1199, 1200],
      ['p1', 799, 800],
      ['p7', 299, 300],
    ]);
    for (const [p, list] of Object.entries(events)) {
      const dump = parseDump((await cli('state', 'dump', '--partition', p)).stdout);
      expect(dump.lsn).toBe(list.length - 1);
      expect(dump.entries).toEqual(bankModel(list));
      const shown = JSON.parse((await cli('--json', 'snapshots', 'show', '--partition', p)).stdout);
      expect(shown).toMatchObject({ partition: p, lsn: list.length - 1, source: `embedded:${p}` });
    }
  });

  it('a poison record stops only its partition, naming the LSN; the others finish; exit 1', async () => {
    const p1 = bankEvents(600, 5);
    p1.splice(250, 0, { key: 'acct-x', value: { type: 'refund', amount: 3 } });
    const { cli } = await setup({ p0: bankEvents(900, 4), p1 });
    const run = await cli('--json', 'run', '--partition', 'p0', '--partition', 'p1', '--processor', PROCESSOR, '--stop-at-end');
    expect(run.code).toBe(1);
    const { partitions } = JSON.parse(run.stdout);
    expect(partitions[0]).toMatchObject({ partition: 'p0', appliedLsn: 899, stoppedBy: 'end-of-log' });
    expect(partitions[1]).toMatchObject({ partition: 'p1', error: { code: 'PROCESSOR_FAILED', details: { partition: 'p1', lsn: 250 } } });
    // Batches of 100: p1 committed up to the batch before the poison record.
    expect(parseDump((await cli('state', 'dump', '--partition', 'p1')).stdout).lsn).toBe(199);

    const human = await cli('run', '--partition', 'p0', '--partition', 'p1', '--processor', PROCESSOR, '--stop-at-end');
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^cairn: error: .*p1 at LSN 250.*\[PROCESSOR_FAILED\]$/m);
  });

  it('rejects a partition given twice, or none, with exit 2 before running anything', async () => {
    const { cli } = await setup({ p0: bankEvents(10, 1) });
    const twice = await cli('run', '--partition', 'p0', '--partition', 'p0', '--processor', PROCESSOR);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/p0 given twice/);
    const none = await cli('run', '--processor', PROCESSOR);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--partition/);
  });
});
