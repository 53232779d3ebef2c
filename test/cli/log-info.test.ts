import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { KafkaLog } from '../../src/log/kafka.js';
import type { LogRecord } from '../../src/log/types.js';
import { jsonOf, runCli, tempDir } from '../helpers/cli.js';
import { createTestTopic, kafkaBrokers } from '../helpers/kafka.js';
import { listTree, writeConfig } from '../helpers/runtime-harness.js';

/**
 * `cairn log info` (issue 11): read-only, so it never creates a partition or a folder, and an
 * unknown partition is NOT_FOUND; `end` is the next LSN to be written, and on Kafka nothing
 * calls end − start a number of records, since transaction markers take offsets too.
 */
describe('cairn log info', () => {
  it('on a fresh embedded log: an unknown partition is NOT_FOUND naming it, and nothing is created', async () => {
    const cwd = tempDir('cairn-log-info-');
    const human = await runCli(['log', 'info', '--partition', 'nope'], { cwd });
    expect(human.code).toBe(1);
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/^cairn: error: partition nope does not exist.*\[NOT_FOUND\]$/m);
    const json = await runCli(['--json', 'log', 'info', '--partition', 'nope'], { cwd });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'NOT_FOUND', details: { partition: 'nope' } } });
    expect(listTree(cwd)).toEqual([]);

    // Other partitions exist now: still NOT_FOUND for this one, and still not created.
    writeConfig(cwd, { log: { type: 'embedded', dir: './log' } });
    const append = await runCli(['log', 'append', '--partition', 'p0', '--jsonl', '-'], { cwd, input: '{"key":"a","value":1}\n' });
    expect(append.code, append.stderr).toBe(0);
    const before = listTree(cwd);
    expect((await runCli(['log', 'info', '--partition', 'nope'], { cwd })).code).toBe(1);
    expect(listTree(cwd)).toEqual(before);
    expect(before.some((p) => p.startsWith('log/nope'))).toBe(false);
    expect(jsonOf(await runCli(['--json', 'log', 'info', '--partition', 'p0'], { cwd }))).toEqual({ partition: 'p0', start: 0, end: 1 });
    expect((await runCli(['log', 'info', '--partition', 'p0'], { cwd })).stdout).toBe('p0: start 0, end 1 (1 records)\n');
  });

  it('on Kafka, a log ending in a transaction marker: end counts the marker offset, and no record count is claimed', async () => {
    const t = await createTestTopic('log-info-markers', 1);
    const log = new KafkaLog({ brokers: kafkaBrokers(), topic: t.topic, clientId: 'cairn-test', maxBatchBytes: 2048 });
    try {
      // ~40 bytes a record in 2 KiB batches: one transaction, whose commit marker ends the log.
      const records = Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, value: { i, pad: 'x'.repeat(8) } }));
      const appended = await log.append('p0', records);
      expect(appended).toEqual({ first: 0, last: 299 });
      // The commit marker took offset 300. The broker writes markers after the commit
      // returns: until then the end (the last stable offset) is the transaction's start.
      let info = await log.info('p0');
      for (const deadline = Date.now() + 20_000; info.end !== 301 && Date.now() < deadline; info = await log.info('p0')) await sleep(100);
      expect(info).toEqual({ start: 0, end: 301 });
      const got: LogRecord[] = [];
      for (let next = 0; got.length < 300; ) {
        const batch = await log.read('p0', next, { maxRecords: 100 });
        got.push(...batch);
        next = batch.at(-1)!.lsn + 1;
      }
      expect(got).toHaveLength(300);

      const cwd = tempDir('cairn-log-info-kafka-');
      writeConfig(cwd, { log: { type: 'kafka', brokers: kafkaBrokers(), topic: t.topic } });
      expect(jsonOf(await runCli(['--json', 'log', 'info', '--partition', 'p0'], { cwd }))).toEqual({ partition: 'p0', start: 0, end: 301 });
      const human = await runCli(['log', 'info', '--partition', 'p0'], { cwd });
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toMatch(/^p0: start 0, end 301 \(/);
      expect(human.stdout).toMatch(/next offset/);
      expect(human.stdout).not.toMatch(/records/);
    } finally {
      await log.close();
      await t.drop();
    }
  });
});
