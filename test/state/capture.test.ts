import { copyFile, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import fc from 'fast-check';
import { ClassicLevel } from 'classic-level';
import { PartitionState } from '../../src/state/partition-state.js';
import { DELETE, type Capture, type StateWrite } from '../../src/state/types.js';
import { it } from '../helpers/fixtures.js';


const SMALL_MEMTABLE = 64 * 1024; // LevelDB's minimum write buffer: many flushes and compactions
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
/** What a value looks like after a JSON round trip (-0 becomes 0, and so on). */
const normalise = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

async function tableFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /^\d+\.(ldb|sst)$/.test(n)).sort();
}

/** Copies a capture elsewhere (as a restore would), opens it, returns its LSN and entries. */
async function restore(capture: Capture, into: string): Promise<{ lsn: number; entries: Array<[string, unknown]> }> {
  await mkdir(into, { recursive: true });
  for (const f of capture.files) await copyFile(f.path, join(into, f.name));
  const restored = await PartitionState.open(into, { create: false });
  try {
    const entries: Array<[string, unknown]> = [];
    for await (const e of restored.entries()) entries.push([e.key, e.value]);
    return { lsn: restored.appliedLsn, entries };
  } finally {
    await restored.close();
  }
}

function expected(model: Map<string, unknown>): Array<[string, unknown]> {
  return [...model].sort(([a], [b]) => byBytes(a, b));
}

describe('LevelDB version pinning through classic-level', () => {
  it('an open iterator keeps the tables of its version through a compaction', async ({ tmp: dir }) => {
    const db = new ClassicLevel<string, string>(dir, { writeBufferSize: SMALL_MEMTABLE });
    await db.open();
    const value = 'x'.repeat(500);
    for (let round = 0; round < 4; round++) {
      await db.batch(Array.from({ length: 400 }, (_, i) => ({ type: 'put' as const, key: `k${String(i * 4 + round).padStart(5, '0')}`, value })));
      await db.compactRange('\x00', '\x00'); // flush to a level-0 table
    }
    const before = await tableFiles(dir);
    expect(before.length).toBeGreaterThan(1);

    // No next(), no seek: classic-level must create the native iterator (and Ref the
    // current Version) in db.iterator() itself for this to hold.
    const pin = db.iterator();
    await db.put('zz', 'after-pin');
    await db.compactRange('\x00', '\xff'); // merges every table into new ones
    const during = await tableFiles(dir);
    for (const name of before) expect(during, `${name} deleted while pinned`).toContain(name);
    expect(during.some((n) => !before.includes(n))).toBe(true);

    await pin.close();
    // The next flush runs DeleteObsoleteFiles: the formerly pinned tables go now.
    await db.put('zzz', 'x');
    await db.compactRange('\x00', '\x00');
    const after = await tableFiles(dir);
    expect(after.filter((n) => before.includes(n))).toEqual([]);
    await db.close();
  });
});

describe('PartitionState.capture', () => {
  it('stages hard links of the live tables, a MANIFEST prefix and CURRENT', async ({ tmp: root }) => {
    const state = await PartitionState.open(join(root, 'db'), { writeBufferSize: SMALL_MEMTABLE });
    const model = new Map<string, unknown>();
    for (let lsn = 0; lsn < 50; lsn++) {
      const writes = new Map<string, StateWrite>();
      for (let i = 0; i < 40; i++) writes.set(`key-${(lsn * 40 + i) % 1500}`, { lsn, pad: 'p'.repeat(200) });
      await state.commit(writes, lsn);
      for (const [k, v] of writes) model.set(k, v);
    }
    const capture = await state.capture(join(root, 'staging'));
    expect(capture.lsn).toBe(49);
    expect(capture.syncPauseMs).toBeGreaterThan(0);
    const names = capture.files.map((f) => f.name);
    expect(names.at(-1)).toBe('CURRENT');
    expect(names.filter((n) => n.startsWith('MANIFEST-'))).toHaveLength(1);
    expect(names.filter((n) => n.endsWith('.ldb')).length).toBeGreaterThan(1);
    for (const f of capture.files) {
      expect((await stat(f.path)).size).toBe(f.size);
      if (f.name.endsWith('.ldb')) {
        const [a, b] = [await stat(f.path), await stat(join(root, 'db', f.name)).catch(() => undefined)];
        if (b) expect(a.ino).toBe(b.ino); // a hard link, not a copy
      }
    }
    // Nothing in the memtable or the .log is needed: the flush put everything in tables.
    expect(names.some((n) => n.endsWith('.log'))).toBe(false);

    const restored = await restore(capture, join(root, 'restored'));
    expect(restored.lsn).toBe(49);
    expect(restored.entries).toEqual(expected(model));

    await capture.release();
    expect(existsSync(capture.dir)).toBe(false);
    // The source is untouched and keeps working.
    await state.commit(new Map([['after', 1]]), 50);
    expect(await state.get('after')).toBe(1);
    await state.close();
  });

  it('later captures reuse earlier links; released captures keep their bytes until pruned; reopen starts clean', async ({ tmp: root }) => {
    const dbDir = join(root, 'db');
    const linked = join(dbDir, '.cairn-linked');
    const state = await PartitionState.open(dbDir, { writeBufferSize: SMALL_MEMTABLE });
    const model = new Map<string, unknown>();
    let lsn = -1;
    const write = async (n: number) => {
      for (let b = 0; b < n; b++) {
        const writes = new Map<string, StateWrite>();
        for (let i = 0; i < 40; i++) writes.set(`key-${(lsn * 40 + i * 13) % 2000}`, { lsn, pad: 'p'.repeat(200) });
        await state.commit(writes, ++lsn);
        for (const [k, v] of writes) model.set(k, v);
      }
    };
    await write(40);
    const first = await state.capture(join(root, 'staging-1'));
    const firstTables = first.files.filter((f) => f.name.endsWith('.ldb'));
    const inode = new Map(await Promise.all(firstTables.map(async (f) => [f.name, (await stat(f.path)).ino] as const)));
    const firstModel = expected(model);

    // A compaction deletes the first capture's tables from the database; its links keep them.
    await write(40);
    await state.compactAll();
    const second = await state.capture(join(root, 'staging-2'));
    const shared = second.files.filter((f) => inode.has(f.name));
    for (const f of shared) expect((await stat(f.path)).ino, `${f.name} linked once`).toBe(inode.get(f.name));
    const gone = firstTables.filter((f) => !existsSync(join(dbDir, f.name)));
    expect(gone.length, 'the compaction removed tables of the first capture').toBeGreaterThan(0);
    expect((await restore(first, join(root, 'restored-1'))).entries).toEqual(firstModel);

    // Releasing the first drops the links only it needed; the newest capture's stay.
    await first.release();
    for (const f of gone) expect(existsSync(f.path), f.name).toBe(false);
    await second.release();
    const secondTables = second.files.filter((f) => f.name.endsWith('.ldb')).map((f) => f.name);
    expect((await readdir(linked)).sort()).toEqual([...secondTables].sort());

    // A new open never trusts links from an earlier one.
    await state.close();
    expect(existsSync(linked)).toBe(false);
    const reopened = await PartitionState.open(dbDir, { writeBufferSize: SMALL_MEMTABLE });
    const third = await reopened.capture(join(root, 'staging-3'));
    expect((await restore(third, join(root, 'restored-3'))).entries).toEqual(expected(model));
    await third.release();
    await reopened.close();
  });

  it('a leftover linked-tables folder from a killed owner is cleared on open', async ({ tmp: root }) => {
    const dbDir = join(root, 'db');
    const state = await PartitionState.open(dbDir);
    await state.commit(new Map([['a', 1]]), 0);
    await state.close();
    // What a SIGKILL mid-upload leaves: a link whose number the next open may reuse.
    await mkdir(join(dbDir, '.cairn-linked'), { recursive: true });
    await writeFile(join(dbDir, '.cairn-linked', '000005.ldb'), 'stale bytes');
    const reopened = await PartitionState.open(dbDir);
    expect(existsSync(join(dbDir, '.cairn-linked'))).toBe(false);
    await reopened.commit(new Map([['b', 2]]), 1);
    const capture = await reopened.capture(join(root, 'staging'));
    expect((await restore(capture, join(root, 'restored'))).entries).toEqual([['a', 1], ['b', 2]]);
    await capture.release();
    await reopened.close();
  });

  it('captures an empty state at LSN -1', async ({ tmp: root }) => {
    const state = await PartitionState.open(join(root, 'db'), { partition: 'p0' });
    const capture = await state.capture(join(root, 'staging'));
    expect(capture.lsn).toBe(-1);
    expect(await restore(capture, join(root, 'restored'))).toEqual({ lsn: -1, entries: [] });
    await capture.release();
    await state.close();
  });

  it('a capture is AsyncDisposable: leaving an `await using` block removes its staging folder', async ({ tmp: root }) => {
    const state = await PartitionState.open(join(root, 'db'), { partition: 'p0' });
    await state.commit(new Map([['a', 1]]), 0);
    const staging = join(root, 'staging');
    {
      await using capture = await state.capture(staging);
      expect(capture.lsn).toBe(0);
      expect(existsSync(staging)).toBe(true);
    }
    expect(existsSync(staging)).toBe(false);
    await state.close();
  });

  it('refuses a commit while a capture runs', async ({ tmp: root }) => {
    const state = await PartitionState.open(join(root, 'db'));
    await state.commit(new Map([['a', 1]]), 0);
    const capturing = state.capture(join(root, 'staging'));
    await expect(state.commit(new Map([['a', 2]]), 1)).rejects.toMatchObject({ code: 'INTERNAL' });
    const capture = await capturing;
    expect(capture.lsn).toBe(0);
    await capture.release();
    await state.commit(new Map([['a', 2]]), 1);
    await state.close();
  });

  it('captures consistently while background compactions run', async ({ tmp: root }) => {
    const state = await PartitionState.open(join(root, 'db'), { writeBufferSize: SMALL_MEMTABLE });
    const model = new Map<string, unknown>();
    let lsn = -1;
    const pauses: number[] = [];
    for (let round = 0; round < 12; round++) {
      // ~600 KiB per round into a 64 KiB memtable: flushes and L0->L1 compactions in the
      // background, so the capture right after usually overlaps one.
      for (let b = 0; b < 20; b++) {
        const writes = new Map<string, StateWrite>();
        for (let i = 0; i < 100; i++) {
          const k = `acct-${String((round * 7919 + b * 104729 + i * 31) % 4000).padStart(5, '0')}`;
          if ((i + b + round) % 11 === 0) writes.set(k, DELETE);
          else writes.set(k, { round, b, i, pad: 'v'.repeat(300) });
        }
        await state.commit(writes, ++lsn);
        for (const [k, v] of writes) v === DELETE ? model.delete(k) : model.set(k, v);
      }
      if (round % 4 === 3) await state.compactAll();
      const capture = await state.capture(join(root, 'staging'));
      pauses.push(capture.syncPauseMs);
      try {
        expect(capture.lsn).toBe(lsn);
        const restored = await restore(capture, join(root, `restored-${round}`));
        expect(restored.lsn).toBe(lsn);
        expect(restored.entries).toEqual(expected(model));
      } finally {
        await capture.release();
        await rm(join(root, `restored-${round}`), { recursive: true, force: true });
      }
    }
    await state.close();
    console.log(`capture sync pauses (ms): ${pauses.map((p) => p.toFixed(1)).join(' ')}`);
  });

  it('property: restored captures equal a Map model after random put/del/capture/compact/reopen', async ({ tempDir }) => {
    const runs = Number(process.env.CAIRN_PROPERTY_RUNS ?? 50);
    const key = fc.oneof(fc.constantFrom('a', 'b', 'c', 'm:lsn', 'd:x', 'é', ''), fc.string({ maxLength: 6, unit: 'grapheme' }));
    const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.nat(3000).map((n) => ({ pad: 'x'.repeat(n) })));
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.record({ t: fc.constant('batch' as const), gap: fc.integer({ min: 1, max: 3 }), writes: fc.array(fc.tuple(key, fc.option(value, { nil: undefined, freq: 4 })), { minLength: 0, maxLength: 8 }) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('bulk' as const), n: fc.integer({ min: 50, max: 300 }) }) },
      { weight: 2, arbitrary: fc.constant({ t: 'capture' as const }) },
      { weight: 1, arbitrary: fc.constant({ t: 'compact' as const }) },
      { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
        const root = join(await tempDir(), `run-${run++}`);
        const dbDir = join(root, 'db');
        let state = await PartitionState.open(dbDir, { writeBufferSize: SMALL_MEMTABLE });
        const model = new Map<string, unknown>();
        let lsn = -1;
        let captures = 0;
        try {
          for (const o of ops) {
            if (o.t === 'batch' || o.t === 'bulk') {
              const writes = new Map<string, StateWrite>();
              if (o.t === 'batch') for (const [k, v] of o.writes) writes.set(k, v === undefined ? DELETE : v);
              else for (let i = 0; i < o.n; i++) writes.set(`bulk-${i}-${lsn}`, { i, pad: 'b'.repeat(400) });
              lsn += o.t === 'batch' ? o.gap : 1;
              await state.commit(writes, lsn);
              for (const [k, v] of writes) v === DELETE ? model.delete(k) : model.set(k, normalise(v));
            } else if (o.t === 'capture') {
              const capture = await state.capture(join(root, 'staging'));
              try {
                expect(capture.lsn).toBe(lsn);
                const restored = await restore(capture, join(root, `restored-${captures++}`));
                expect(restored.lsn).toBe(lsn);
                expect(restored.entries).toEqual(expected(model));
              } finally {
                await capture.release();
              }
            } else if (o.t === 'compact') {
              await state.compactAll();
            } else {
              await state.close();
              state = await PartitionState.open(dbDir, { create: false, writeBufferSize: SMALL_MEMTABLE });
              expect(state.appliedLsn).toBe(lsn);
            }
          }
          const live: Array<[string, unknown]> = [];
          for await (const e of state.entries()) live.push([e.key, e.value]);
          expect(live).toEqual(expected(model));
        } finally {
          await state.close();
          await rm(root, { recursive: true, force: true });
        }
      }),
      { numRuns: runs },
    );
  });
});
