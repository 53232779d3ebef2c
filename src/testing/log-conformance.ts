import { describe, expect, it } from 'vitest';
import { expectCode } from './assertions.js';
import type { Log } from '../log/types.js';

/**
 * The behaviour every Log backend owes its callers, written against the interface only so
 * the same suite runs on the embedded log and on Kafka. It does not assume LSNs start at 0
 * or are dense (Kafka offsets need not be); it does assume they increase in append order.
 * Each test gets a fresh log and partition from `makeLog`.
 */
export interface LogFixture {
  log: Log;
  partition: string;
  /** A second, distinct partition of the same log (Kafka: another topic partition). */
  otherPartition?: string;
  cleanup: () => Promise<void>;
}

async function withLog(makeLog: () => Promise<LogFixture>, fn: (log: Log, partition: string, other?: string) => Promise<void>): Promise<void> {
  const { log, partition, otherPartition, cleanup } = await makeLog();
  try {
    await fn(log, partition, otherPartition);
  } finally {
    await cleanup();
  }
}

const rec = (i: number) => ({ key: `k${i}`, value: { i } });

export function runLogConformance(name: string, makeLog: () => Promise<LogFixture>): void {
  describe(`Log conformance: ${name}`, () => {
    it('appends and reads back in order', async () => {
      await withLog(makeLog, async (log, p) => {
        const a = await log.append(p, [rec(0), rec(1), rec(2)]);
        const b = await log.append(p, [rec(3)]);
        expect(a.last).toBeGreaterThanOrEqual(a.first);
        expect(b.first).toBeGreaterThan(a.last);
        const got = await log.read(p, a.first, { maxRecords: 100 });
        expect(got.map((r) => r.key)).toEqual(['k0', 'k1', 'k2', 'k3']);
        expect(got[0]!.lsn).toBe(a.first);
        expect(got[2]!.lsn).toBe(a.last);
        expect(got[3]!.lsn).toBe(b.first);
        for (let i = 1; i < got.length; i++) expect(got[i]!.lsn).toBeGreaterThan(got[i - 1]!.lsn);
        for (const r of got) expect(typeof r.timestamp).toBe('number');
      });
    });

    it('keeps the timestamp given on append', async () => {
      await withLog(makeLog, async (log, p) => {
        const { first } = await log.append(p, [{ key: 'a', value: 1, timestamp: 1_700_000_000_123 }]);
        const [r] = await log.read(p, first, { maxRecords: 1 });
        expect(r!.timestamp).toBe(1_700_000_000_123);
      });
    });

    it('reports start and end in info', async () => {
      await withLog(makeLog, async (log, p) => {
        const before = await log.info(p);
        expect(before.end).toBeGreaterThanOrEqual(before.start);
        const { first, last } = await log.append(p, [rec(0), rec(1)]);
        expect(first).toBeGreaterThanOrEqual(before.end);
        const after = await log.info(p);
        expect(after.start).toBe(before.start);
        expect(after.end).toBe(last + 1);
      });
    });

    it('honours maxRecords and toLsn', async () => {
      await withLog(makeLog, async (log, p) => {
        const { first } = await log.append(p, Array.from({ length: 10 }, (_, i) => rec(i)));
        const all = await log.read(p, first, { maxRecords: 100 });
        expect(all).toHaveLength(10);
        const two = await log.read(p, first, { maxRecords: 2 });
        expect(two.map((r) => r.key)).toEqual(['k0', 'k1']);
        const upTo = await log.read(p, first, { maxRecords: 100, toLsn: all[4]!.lsn });
        expect(upTo.map((r) => r.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
        const both = await log.read(p, all[2]!.lsn, { maxRecords: 2, toLsn: all[8]!.lsn });
        expect(both.map((r) => r.key)).toEqual(['k2', 'k3']);
        const middle = await log.read(p, all[3]!.lsn, { maxRecords: 100 });
        expect(middle[0]!.key).toBe('k3');
        expect(await log.read(p, all[5]!.lsn, { maxRecords: 10, toLsn: all[4]!.lsn })).toEqual([]);
      });
    });

    it('returns [] at the end, and waitMs wakes promptly on an append', async () => {
      await withLog(makeLog, async (log, p) => {
        await log.append(p, [rec(0)]);
        const { end } = await log.info(p);
        expect(await log.read(p, end, { maxRecords: 10 })).toEqual([]);

        const t0 = Date.now();
        expect(await log.read(p, end, { maxRecords: 10, waitMs: 200 })).toEqual([]);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(150);

        const started = Date.now();
        const pending = log.read(p, end, { maxRecords: 10, waitMs: 20_000 });
        setTimeout(() => void log.append(p, [rec(1)]), 100);
        const got = await pending;
        expect(got.map((r) => r.key)).toEqual(['k1']);
        expect(Date.now() - started).toBeLessThan(10_000);
      });
    });

    it('stops waiting when the signal aborts', async () => {
      await withLog(makeLog, async (log, p) => {
        const { end } = await log.info(p);
        const ac = new AbortController();
        const started = Date.now();
        setTimeout(() => ac.abort(), 50);
        expect(await log.read(p, end, { maxRecords: 10, waitMs: 20_000, signal: ac.signal })).toEqual([]);
        expect(Date.now() - started).toBeLessThan(10_000);
      });
    });

    it('trims: start moves, never backwards, clamps to end; reads below start are TRIM_GAP', async () => {
      await withLog(makeLog, async (log, p) => {
        const { first, last } = await log.append(p, Array.from({ length: 6 }, (_, i) => rec(i)));
        const all = await log.read(p, first, { maxRecords: 100 });
        const cut = all[3]!.lsn;

        const t1 = await log.trim(p, cut);
        expect(t1.start).toBe(cut);
        expect(t1.end).toBe(last + 1);
        expect(await log.info(p)).toEqual(t1);
        const rest = await log.read(p, cut, { maxRecords: 100 });
        expect(rest.map((r) => r.key)).toEqual(['k3', 'k4', 'k5']);

        const gap = await expectCode(log.read(p, first, { maxRecords: 10 }), 'TRIM_GAP');
        expect(gap.details).toMatchObject({ requested: first, start: cut });

        const back = await log.trim(p, first);
        expect(back.start).toBe(cut);

        const far = await log.trim(p, last + 1000);
        expect(far.start).toBe(last + 1);
        expect(far.end).toBe(last + 1);
        expect(await log.read(p, last + 1, { maxRecords: 10 })).toEqual([]);

        // Appends after a full trim continue above the old end.
        const again = await log.append(p, [rec(9)]);
        expect(again.first).toBeGreaterThan(last);
        const got = await log.read(p, again.first, { maxRecords: 10 });
        expect(got.map((r) => r.key)).toEqual(['k9']);
      });
    });

    it('round-trips JSON values of every type', async () => {
      await withLog(makeLog, async (log, p) => {
        const values: unknown[] = [
          null,
          true,
          false,
          0,
          -1.5,
          1e21,
          '',
          'ünïcødé ✓ \u{1F600}',
          [],
          [1, 'two', null, [3]],
          {},
          { nested: { deep: [1, { x: 'y' }] }, empty: '' },
        ];
        const { first } = await log.append(
          p,
          values.map((value, i) => ({ key: `v${i}`, value })),
        );
        const got = await log.read(p, first, { maxRecords: 100 });
        // Stored as JSON text, except null: a record without a value (a tombstone).
        expect(got.map((r) => (r.value === null ? null : JSON.parse(r.value.toString('utf8'))))).toEqual(values);
        expect(got.map((r) => r.value === null)).toEqual(values.map((v) => v === null));
        expect(got.map((r) => r.key)).toEqual(values.map((_, i) => `v${i}`));
      });
    });

    it('keeps keys, values and headers byte for byte: null apart from empty, binary keys as bytes', async () => {
      await withLog(makeLog, async (log, p) => {
        const binary = Buffer.from([0xc3, 0x28, 0x00, 0xff]);
        const { first } = await log.append(p, [
          { key: null, value: Buffer.from('raw text') },
          { key: '', value: Buffer.alloc(0) },
          { key: binary, value: null },
          { key: 'h', value: Buffer.from([0, 1, 2]), headers: [{ key: 'trace', value: 'abc' }, { key: 'tag', value: 'x' }, { key: 'tag', value: Buffer.from([0xff]) }] },
          { key: 'o', value: 'json text', headers: { 'content-type': 'application/json' } },
        ]);
        const got = await log.read(p, first, { maxRecords: 10 });
        const hex = (b: Buffer | null) => (b === null ? null : b.toString('hex'));
        expect(got.map((r) => [r.key, hex(r.keyBytes), hex(r.value)])).toEqual([
          [null, null, Buffer.from('raw text').toString('hex')],
          ['', '', ''],
          [null, binary.toString('hex'), null],
          ['h', Buffer.from('h').toString('hex'), '000102'],
          ['o', Buffer.from('o').toString('hex'), Buffer.from('"json text"').toString('hex')],
        ]);
        expect(got.map((r) => r.headers.map((h) => [h.key, hex(h.value)]))).toEqual([
          [],
          [],
          [],
          [
            ['trace', Buffer.from('abc').toString('hex')],
            ['tag', Buffer.from('x').toString('hex')],
            ['tag', 'ff'],
          ],
          [['content-type', Buffer.from('application/json').toString('hex')]],
        ]);
      });
    });

    it('refuses a header without a text name or with a null value, appending nothing', async () => {
      await withLog(makeLog, async (log, p) => {
        const before = await log.info(p);
        await expectCode(log.append(p, [rec(1), { key: 'x', value: 1, headers: [{ key: 'a', value: null as unknown as string }] }]), 'BAD_INPUT');
        await expectCode(log.append(p, [{ key: 'x', value: 1, headers: [{ key: 7 as unknown as string, value: 'v' }] }]), 'BAD_INPUT');
        expect(await log.info(p)).toEqual(before);
      });
    });

    it('keeps partitions apart', async () => {
      await withLog(makeLog, async (log, p, other) => {
        if (other === undefined) return; // the backend's fixture has a single partition
        const a = await log.append(p, [rec(1)]);
        const b = await log.append(other, [rec(2)]);
        expect((await log.read(p, a.first, { maxRecords: 10 })).map((r) => r.key)).toEqual(['k1']);
        expect((await log.read(other, b.first, { maxRecords: 10 })).map((r) => r.key)).toEqual(['k2']);
      });
    });

    it('lists the partitions it holds, sorted, including those appended to', async () => {
      await withLog(makeLog, async (log, p, other) => {
        await log.append(p, [rec(0)]);
        if (other !== undefined) await log.append(other, [rec(1)]);
        const listed = await log.partitions();
        expect(listed).toContain(p);
        if (other !== undefined) expect(listed).toContain(other);
        expect([...listed].sort()).toEqual(listed);
        for (const name of listed) expect(name).toMatch(/^[a-z0-9][a-z0-9._-]{0,62}$/);
      });
    });

    it('rejects invalid partition names with BAD_INPUT', async () => {
      await withLog(makeLog, async (log) => {
        await expectCode(log.append('../etc', [rec(0)]), 'BAD_INPUT');
        await expectCode(log.info('UPPER'), 'BAD_INPUT');
      });
    });

    it('appends nothing for an empty call, and nothing at all when one record is not JSON', async () => {
      await withLog(makeLog, async (log, p) => {
        await log.append(p, [rec(0)]);
        const before = await log.info(p);
        expect(await log.append(p, [])).toEqual({ first: before.end, last: before.end - 1 });
        await expectCode(log.append(p, [rec(1), { key: 'bad', value: 10n }]), 'BAD_INPUT');
        expect(await log.info(p)).toEqual(before);
        const { first } = await log.append(p, [rec(2)]);
        expect(first).toBeGreaterThanOrEqual(before.end);
        expect((await log.read(p, before.end, { maxRecords: 10 })).map((r) => r.key)).toEqual(['k2']);
      });
    });

    it('names each partition by a stable source of its own', async () => {
      await withLog(makeLog, async (log, p, other) => {
        expect(log.source(p)).toBe(log.source(p));
        if (other !== undefined) expect(log.source(other)).not.toBe(log.source(p));
      });
    });

    it('describes its source and capabilities', async () => {
      await withLog(makeLog, async (log, p) => {
        expect(log.source(p)).toMatch(new RegExp(`${p.replace(/[.]/g, '\\.')}`));
        expect(typeof log.capabilities.name).toBe('string');
        expect(typeof log.capabilities.multiProcess).toBe('boolean');
      });
    });
  });
}
