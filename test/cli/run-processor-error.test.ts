import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

/**
 * An exception thrown in a processor's apply (issue 11): `cairn run` logs it once, as one
 * structured line with the stack of the processor's own code and the LSN it failed at, and
 * ends with the usual one-line error and exit 1.
 */
it('cairn run logs a processor exception once, with its stack and LSN, then the one-line error; exit 1', async () => {
  const cwd = tempDir('cairn-run-throws-');
  writeFileSync(
    join(cwd, 'throwing-processor.mjs'),
    [
      'function checkRecord(record) {',
      "  if (record.value.n === 7) throw new Error('the seventh record is poison');",
      '}',
      "export default { name: 'throws-at-seven', async apply(record, state) { checkRecord(record); state.put('last', record.value.n); } };",
      '',
    ].join('\n'),
  );
  writeFileSync(join(cwd, 'events.jsonl'), Array.from({ length: 12 }, (_, n) => JSON.stringify({ key: `k${n}`, value: { n } })).join('\n'));
  expect((await runCli(['log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl'], { cwd })).code).toBe(0);

  const r = await runCli(['run', '--partition', 'p0', '--processor', './throwing-processor.mjs', '--stop-at-end'], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } });
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  const json = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string; lsn?: number; err?: { code?: string; stack?: string; message?: string } });
  const mentions = json.filter((l) => JSON.stringify(l).includes('poison'));
  expect(mentions, r.stderr).toHaveLength(1);
  const [logged] = mentions;
  expect(logged).toMatchObject({ level: 50, msg: 'partition stopped', lsn: 7, err: { code: 'PROCESSOR_FAILED' } });
  // The stack reaches into the processor's own code, not only the runtime's.
  expect(logged!.err!.stack).toMatch(/Error: the seventh record is poison\n\s+at checkRecord \(.*throwing-processor\.mjs:2/);
  // And the CLI's final line, exactly once.
  const final = lines.filter((l) => l.startsWith('cairn: error:'));
  expect(final).toHaveLength(1);
  expect(final[0]).toMatch(/^cairn: error: .*LSN 7.*poison \[PROCESSOR_FAILED\]$/);
  expect(lines.filter((l) => !l.startsWith('{') && !l.startsWith('cairn: error:'))).toEqual([]);
});
