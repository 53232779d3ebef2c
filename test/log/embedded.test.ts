import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { ClassicLevel } from 'classic-level';
import { EmbeddedLog } from '../../src/log/embedded.js';
import { createLog } from '../../src/log/index.js';
import { it, makeTempDir, removeDir } from '../helpers/fixtures.js';
import { runLogConformance } from '../../src/testing/log-conformance.js';


runLogConformance('embedded', async () => {
  const dir = await makeTempDir('log-conf');
  const log = new EmbeddedLog({ dir });
  return {
    log,
    partition: 'p0',
    otherPartition: 'p1',
    cleanup: async () => {
      await log.close();
      await removeDir(dir);
    },
  };
});

/** Holds a partition's LevelDB open in another process until killed. */
async function holdInChild(location: string): Promise<ChildProcess> {
  const code = `
    import { ClassicLevel } from 'classic-level';
    const db = new ClassicLevel(${JSON.stringify(location)});
    await db.open();
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', (c) => reject(new Error(`child exited with ${c}`)));
  });
  return child;
}

describe('EmbeddedLog', () => {
  it('assigns dense LSNs from 0 and persists start and end across reopen', async ({ tmp: dir }) => {
    const log = new EmbeddedLog({ dir });
    expect(await log.append('p0', [{ key: 'a', value: 1 }, { key: 'b', value: 2 }])).toEqual({ first: 0, last: 1 });
    expect(await log.append('p0', [{ key: 'c', value: 3 }])).toEqual({ first: 2, last: 2 });
    expect(await log.trim('p0', 1)).toEqual({ start: 1, end: 3 });
    expect(log.source('p0')).toBe('embedded:p0');
    expect(log.capabilities).toEqual({ name: 'embedded', multiProcess: false, groups: false });
    await log.close();

    const again = new EmbeddedLog({ dir });
    expect(await again.info('p0')).toEqual({ start: 1, end: 3 });
    expect((await again.read('p0', 1, { maxRecords: 10 })).map((r) => [r.lsn, r.key])).toEqual([
      [1, 'b'],
      [2, 'c'],
    ]);
    // A full trim leaves no record behind, yet LSNs are never reused after reopen.
    expect(await again.trim('p0', 99)).toEqual({ start: 3, end: 3 });
    await again.close();
    const third = new EmbeddedLog({ dir });
    expect(await third.info('p0')).toEqual({ start: 3, end: 3 });
    expect(await third.append('p0', [{ key: 'd', value: 4 }])).toEqual({ first: 3, last: 3 });
    await third.close();
  });

  it('appends all or nothing', async ({ tmp }) => {
    const log = new EmbeddedLog({ dir: tmp });
    await log.append('p0', [{ key: 'a', value: 1 }]);
    const bad = [{ key: 'b', value: 2 }, { key: 'c', value: 10n }];
    await expect(log.append('p0', bad)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(log.append('p0', [{ key: 'b', value: 2 }, { key: 7 as unknown as string, value: 1 }])).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(await log.info('p0')).toEqual({ start: 0, end: 1 });
    expect(await log.append('p0', [{ key: 'd', value: 4 }])).toEqual({ first: 1, last: 1 });
    await log.close();
  });

  it('keeps LSNs dense under concurrent appends', async ({ tmp }) => {
    const log = new EmbeddedLog({ dir: tmp });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append('p0', [{ key: `a${i}`, value: i }, { key: `b${i}`, value: i }])));
    const lsns = results.flatMap((r) => [r.first, r.last]).sort((a, b) => a - b);
    expect(lsns).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const all = await log.read('p0', 0, { maxRecords: 1000 });
    expect(all.map((r) => r.lsn)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    await log.close();
  });

  it('reads an empty array for an empty append and rejects bad read options', async ({ tmp }) => {
    const log = new EmbeddedLog({ dir: tmp });
    expect(await log.append('p0', [])).toEqual({ first: 0, last: -1 });
    await expect(log.read('p0', -1, { maxRecords: 1 })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(log.read('p0', 0, { maxRecords: 0 })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await log.close();
  });

  it('wakes a waiting reader when the log closes', async ({ tmp }) => {
    const log = new EmbeddedLog({ dir: tmp });
    await log.info('p0');
    const started = Date.now();
    const pending = log.read('p0', 0, { maxRecords: 10, waitMs: 30_000 });
    setTimeout(() => void log.close(), 50);
    expect(await pending).toEqual([]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('fails with LOG_BUSY when another process holds the partition, and recovers after', async ({ tmp: dir }) => {
    const child = await holdInChild(join(dir, 'p0'));
    const log = new EmbeddedLog({ dir });
    try {
      const err = await log.append('p0', [{ key: 'a', value: 1 }]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'LOG_BUSY', retryable: true });
      expect((err as Error).message).toMatch(/single-process/);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    // The failed open was not cached; the lock died with the child.
    expect(await log.append('p0', [{ key: 'a', value: 1 }])).toEqual({ first: 0, last: 0 });
    await log.close();
  });

  it('gives LOG_BUSY to a second EmbeddedLog in the same process too', async ({ tmp: dir }) => {
    const a = new EmbeddedLog({ dir });
    const b = new EmbeddedLog({ dir });
    await a.append('p0', [{ key: 'a', value: 1 }]);
    await expect(b.info('p0')).rejects.toMatchObject({ code: 'LOG_BUSY' });
    await a.close();
    await b.close();
  });

  it('info and trim of a partition never appended to answer empty and create nothing', async ({ tmp: root }) => {
    const dir = join(root, 'log');
    const log = new EmbeddedLog({ dir });
    expect(await log.info('nope')).toEqual({ start: 0, end: 0 });
    expect(await log.trim('nope', 10)).toEqual({ start: 0, end: 0 });
    expect(existsSync(dir)).toBe(false);
    await log.append('p0', [{ key: 'a', value: 1 }]);
    expect(await log.info('nope')).toEqual({ start: 0, end: 0 });
    expect(readdirSync(dir)).toEqual(['p0']);
    expect(await log.partitions()).toEqual(['p0']);
    await log.close();
  });

  it('removes trimmed records from disk', async ({ tmp: dir }) => {
    const log = new EmbeddedLog({ dir });
    await log.append('p0', Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(100) })));
    await log.trim('p0', 60);
    await log.close();
    const db = new ClassicLevel<string, string>(join(dir, 'p0'));
    const keys: string[] = [];
    for await (const k of db.keys({ gte: 'r', lt: 's' })) keys.push(k);
    await db.close();
    expect(keys).toHaveLength(40);
    expect(keys[0]).toBe('r' + '60'.padStart(16, '0'));
  });

  it('reads records written in the earlier JSON format beside new ones, and never passes off a damaged one', async ({ tmp: dir }) => {
    // Written as the first releases did: {k, v, t} JSON text, with the start marker as text.
    const db = new ClassicLevel<string, string>(join(dir, 'p0'));
    await db.put('r' + '0'.padStart(16, '0'), '{"k":"acct-1","v":{"type":"deposit","amount":5},"t":1700000000000}');
    await db.put('r' + '1'.padStart(16, '0'), '{"k":"acct-2","v":null,"t":1700000000001}');
    await db.close();
    const log = new EmbeddedLog({ dir });
    const { first } = await log.append('p0', [{ key: 'acct-3', value: { type: 'withdrawal', amount: 1 } }]);
    expect(first).toBe(2);
    const got = await log.read('p0', 0, { maxRecords: 10 });
    expect(got.map((r) => [r.lsn, r.key, r.value?.toString('utf8') ?? null, r.timestamp > 0])).toEqual([
      [0, 'acct-1', '{"type":"deposit","amount":5}', true],
      [1, 'acct-2', 'null', true],
      [2, 'acct-3', '{"type":"withdrawal","amount":1}', true],
    ]);
    await log.close();
    const raw = new ClassicLevel<string, Buffer>(join(dir, 'p0'), { valueEncoding: 'buffer' });
    await raw.put('r' + '3'.padStart(16, '0'), Buffer.from([0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    await raw.close();
    const reopened = new EmbeddedLog({ dir });
    await expect(reopened.read('p0', 3, { maxRecords: 1 })).rejects.toMatchObject({ code: 'CORRUPT', details: { lsn: 3 } });
    await reopened.close();
  });

  it('createLog builds the embedded log', async ({ tmp: dir }) => {
    const log = createLog({ type: 'embedded', dir, unavailableTimeoutMs: 60_000 });
    expect(log.capabilities.name).toBe('embedded');
    await log.close();
  });
});
