import { spawn } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { PartitionState } from '../../src/state/partition-state.js';
import { DELETE, type StateWrite } from '../../src/state/types.js';
import { it } from '../helpers/fixtures.js';


const w = (entries: Array<[string, StateWrite]>) => new Map(entries);

async function collect(state: PartitionState, options?: { gt?: string }) {
  const out: Array<[string, unknown]> = [];
  for await (const e of state.entries(options)) out.push([e.key, e.value]);
  return out;
}

describe('PartitionState', () => {
  it('starts empty at LSN -1 and commits writes with their LSN', async ({ tmp: dir }) => {
    const s = await PartitionState.open(join(dir, 'p0'), { partition: 'p0' });
    expect(s.appliedLsn).toBe(-1);
    expect(s.partition).toBe('p0');
    await s.commit(w([['a', 1], ['b', { x: [1, 'y'] }], ['c', 'text']]), 0);
    expect(s.appliedLsn).toBe(0);
    expect(await s.get('b')).toEqual({ x: [1, 'y'] });
    await s.commit(w([['a', DELETE], ['c', null]]), 5);
    expect(await s.get('a')).toBeUndefined();
    expect(await s.get('c')).toBeNull();
    expect(await s.get('missing')).toBeUndefined();
    expect(s.appliedLsn).toBe(5);
    expect(await s.count()).toBe(2);
    await s.close();
  });

  it('keeps the applied LSN and data across reopen', async ({ tmp }) => {
    const dir = join(tmp, 'p0');
    const s = await PartitionState.open(dir);
    await s.commit(w([['k', 42]]), 17);
    await s.close();
    const again = await PartitionState.open(dir, { create: false });
    expect(again.appliedLsn).toBe(17);
    expect(await again.get('k')).toBe(42);
    await again.close();
  });

  it('refuses an applied LSN that goes backwards, without writing anything', async ({ tmp }) => {
    const s = await PartitionState.open(tmp);
    await s.commit(w([['a', 1]]), 10);
    await s.commit(w([]), 10); // the same LSN again is allowed (an empty flush)
    await expect(s.commit(w([['a', 2]]), 9)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(s.commit(w([['a', 2]]), -1)).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(await s.get('a')).toBe(1);
    expect(s.appliedLsn).toBe(10);
    await s.close();
  });

  it('commits atomically: a bad value fails the whole batch', async ({ tmp: dir }) => {
    const s = await PartitionState.open(dir);
    await s.commit(w([['a', 1]]), 0);
    await expect(s.commit(w([['a', 2], ['b', 10n]]), 1)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(s.commit(w([['a', 2], ['b', undefined]]), 1)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(await s.get('a')).toBe(1);
    expect(s.appliedLsn).toBe(0);
    await s.close();
    const again = await PartitionState.open(dir);
    expect(again.appliedLsn).toBe(0);
    expect(await collect(again)).toEqual([['a', 1]]);
    await again.close();
  });

  it('lists user entries in key order, never metadata, and honours gt', async ({ tmp }) => {
    const s = await PartitionState.open(tmp, { partition: 'p1' });
    const keys = ['b', 'a', '', 'm:lsn', 'z', 'a/b', 'é', '\u{1F600}', 'A'];
    await s.commit(w(keys.map((k, i) => [k, i])), 3);
    const got = await collect(s);
    const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(got.map(([k]) => k)).toEqual(byBytes);
    expect(await s.get('m:lsn')).toBe(3); // a user key named like metadata is just data
    expect(s.appliedLsn).toBe(3);
    expect((await collect(s, { gt: 'a' })).map(([k]) => k)).toEqual(byBytes.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from('a')) > 0));
    await s.close();
  });

  it('stores bytes values as bytes', async ({ tmp }) => {
    const s = await PartitionState.open(tmp);
    await s.commit(w([['bin', new Uint8Array([0, 1, 255])]]), 0);
    expect(await s.get('bin')).toEqual(Buffer.from([0, 1, 255]));
    await s.close();
  });

  it('open with create:false on a missing or empty folder is NOT_FOUND and creates nothing', async ({ tmp: dir }) => {
    await expect(PartitionState.open(join(dir, 'nope'), { create: false })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(PartitionState.open(dir, { create: false })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('maps a damaged folder to CORRUPT and a held lock to STATE_UNAVAILABLE', async ({ tmp: dir }) => {
    const s = await PartitionState.open(dir);
    await s.commit(w([['a', 1]]), 0);
    await expect(PartitionState.open(dir)).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE' });
    await s.close();

    await writeFile(join(dir, 'CURRENT'), 'MANIFEST-999999\n');
    await expect(PartitionState.open(dir, { create: false })).rejects.toMatchObject({ code: 'CORRUPT' });
    await writeFile(join(dir, 'CURRENT'), 'garbage');
    await expect(PartitionState.open(dir, { create: false })).rejects.toMatchObject({ code: 'CORRUPT' });
  });

  it('is STATE_UNAVAILABLE while another process holds the folder', async ({ tmp: dir }) => {
    const code = `
      import { ClassicLevel } from 'classic-level';
      const db = new ClassicLevel(${JSON.stringify(dir)});
      await db.open();
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.on('exit', (c) => reject(new Error(`child exited with ${c}`)));
      });
      await expect(PartitionState.open(dir)).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE' });
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('rejects use after close and invalid partition names', async ({ tmp: dir }) => {
    await expect(PartitionState.open(dir, { partition: 'Bad/Name' })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    const s = await PartitionState.open(dir);
    await s.close();
    await s.close();
    await expect(s.get('a')).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});
