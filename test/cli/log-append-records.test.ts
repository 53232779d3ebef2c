import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parseDump } from '../helpers/bank-model.js';
import { runCli, tempDir } from '../helpers/cli.js';

/**
 * `cairn log append` takes records as Kafka has them: null keys and tombstones in JSONL,
 * empty keys apart from null ones, headers; a processor module sees each as written.
 */
it('appends null keys, empty keys, tombstones and headers from JSONL; a processor sees them as written', async () => {
  const cwd = tempDir('cairn-append-records-');
  const lines = [
    { key: 'a', value: { n: 1 } },
    { key: null, value: 'text' },
    { key: '', value: 0 },
    { key: 'a', value: null },
    { key: 'h', value: [1], headers: { trace: 't-9', source: 'import' } },
  ];
  writeFileSync(join(cwd, 'events.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n'));
  writeFileSync(
    join(cwd, 'seen.mjs'),
    [
      'export default {',
      "  name: 'seen',",
      '  apply(record, state) {',
      '    const headers = record.headers.map((h) => [h.key, h.value.toString()]);',
      '    state.put(`seen/${record.lsn}`, { key: record.key, value: record.value, headers });',
      '  },',
      '};',
      '',
    ].join('\n'),
  );
  const appended = await runCli(['--json', 'log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl'], { cwd });
  expect(appended.code, appended.stderr).toBe(0);
  expect(JSON.parse(appended.stdout)).toMatchObject({ count: 5, first: 0, last: 4 });
  const run = await runCli(['run', '--partition', 'p0', '--processor', './seen.mjs', '--stop-at-end'], { cwd });
  expect(run.code, run.stderr).toBe(0);
  const { entries } = parseDump((await runCli(['state', 'dump', '--partition', 'p0'], { cwd })).stdout);
  expect([...entries.values()]).toEqual([
    { key: 'a', value: { n: 1 }, headers: [] },
    { key: null, value: 'text', headers: [] },
    { key: '', value: 0, headers: [] },
    { key: 'a', value: null, headers: [] },
    {
      key: 'h',
      value: [1],
      headers: [
        ['trace', 't-9'],
        ['source', 'import'],
      ],
    },
  ]);
});
