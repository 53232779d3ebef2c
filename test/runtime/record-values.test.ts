import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EmbeddedLog } from '../../src/log/embedded.js';
import type { AppendRecord } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor, ProcessorContext, ProcessorRecord } from '../../src/runtime/processor-module.js';
import bank from '../../examples/bank/processor.js';
import { tempDir } from '../helpers/cli.js';
import { embeddedConfig, readState, releasedAfterEach } from '../helpers/runtime-harness.js';

/**
 * What `apply` receives: values decoded by the processor's declaration (valueCodec or its
 * own decode), tombstones as null, keys that are null, empty or binary kept apart, headers
 * as written; and the init/close lifecycle around a run.
 */
const { dirs, closers } = releasedAfterEach();

async function rig(records: AppendRecord[], runtime: { onBadRecord?: 'stop' | 'skip' } = {}) {
  const dir = tempDir('cairn-record-values-');
  dirs.push(dir);
  const { config } = embeddedConfig(dir, { runtime: { batchSize: 4, onBadRecord: runtime.onBadRecord ?? 'stop' } });
  const log = new EmbeddedLog({ dir: join(dir, 'log') });
  await log.append('p0', records);
  const cairn = new Cairn(config, { log });
  closers.push(() => cairn.close());
  const run = async (processor: Processor) => {
    const p = cairn.processor('p0', processor);
    try {
      return await p.run({ stopAtEnd: true });
    } finally {
      await p.close();
    }
  };
  return { run, state: () => readState(join(config.stateDir, 'p0')) };
}

/** A processor that records what it was handed. */
function recording<V>(declaration: Pick<Processor<V>, 'valueCodec' | 'decode'>) {
  const seen: Array<ProcessorRecord<V>> = [];
  const processor: Processor<V> = { name: 'recording', ...declaration, apply: (r) => void seen.push(r) };
  return { seen, processor };
}

const mixed: AppendRecord[] = [
  { key: 'a', value: Buffer.from('plain text') },
  { key: null, value: Buffer.from('{"n":1}') },
  { key: '', value: Buffer.alloc(0) },
  { key: Buffer.from([0xff, 0xfe]), value: null },
  { key: 'h', value: Buffer.from('with headers'), headers: [{ key: 'trace', value: 't-1' }, { key: 'trace', value: 't-2' }] },
];

describe('values decoded as the processor declares', () => {
  it("valueCodec 'string' hands over exactly the text written; a tombstone as null; keys and headers as written", async () => {
    const r = await rig(mixed);
    const { seen, processor } = recording<string>({ valueCodec: 'string' });
    await r.run(processor);
    expect(seen.map((s) => [s.lsn, s.key, s.keyBytes?.toString('hex') ?? null, s.value])).toEqual([
      [0, 'a', '61', 'plain text'],
      [1, null, null, '{"n":1}'],
      [2, '', '', ''],
      [3, null, 'fffe', null],
      [4, 'h', '68', 'with headers'],
    ]);
    expect(seen[4]!.headers.map((h) => [h.key, h.value?.toString()])).toEqual([
      ['trace', 't-1'],
      ['trace', 't-2'],
    ]);
  });

  it("valueCodec 'bytes' hands over the bytes themselves", async () => {
    const r = await rig(mixed);
    const { seen, processor } = recording<Buffer>({ valueCodec: 'bytes' });
    await r.run(processor);
    expect(seen.map((s) => (s.value === null ? null : Buffer.from(s.value).toString('hex')))).toEqual([
      Buffer.from('plain text').toString('hex'),
      Buffer.from('{"n":1}').toString('hex'),
      '',
      null,
      Buffer.from('with headers').toString('hex'),
    ]);
  });

  it('a processor\'s own decode (a zod schema) types the value; it never sees a tombstone; its refusal is PROCESSOR_FAILED at that LSN', async () => {
    const Order = z.object({ sku: z.string(), qty: z.number().int().positive() });
    const decoded: string[] = [];
    const decode = (b: Buffer) => {
      decoded.push(b.toString());
      return Order.parse(JSON.parse(b.toString('utf8')));
    };
    const r = await rig([
      { key: 'o1', value: { sku: 'A', qty: 2 } },
      { key: 'o1', value: null },
      { key: 'o2', value: { sku: 'B', qty: 1 } },
      { key: 'o3', value: { sku: 'C', qty: -1 } },
    ]);
    const totals: Processor<z.infer<typeof Order>, number> = {
      name: 'totals',
      decode,
      async apply(record, state) {
        if (record.value === null) return state.del(`qty/${record.key}`);
        state.put(`qty/${record.key}`, ((await state.get(`qty/${record.key}`)) ?? 0) + record.value.qty);
      },
    };
    await expect(r.run(totals)).rejects.toMatchObject({ code: 'PROCESSOR_FAILED', details: { partition: 'p0', lsn: 3 } });
    expect(decoded).toHaveLength(3); // the tombstone was not decoded
  });

  it("the default JSON codec: bytes that are not JSON, or not UTF-8 for 'string', are CORRUPT at their LSN, or skipped and counted", async () => {
    const records: AppendRecord[] = [{ key: 'k', value: { n: 1 } }, { key: 'k', value: Buffer.from('not json') }, { key: 'k', value: { n: 2 } }];
    const stopping = await rig(records);
    const { processor } = recording<unknown>({});
    await expect(stopping.run(processor)).rejects.toMatchObject({ code: 'CORRUPT', details: { lsn: 1 } });

    const text = await rig([{ key: 'k', value: Buffer.from([0x61, 0xff]) }]);
    await expect(text.run(recording<string>({ valueCodec: 'string' }).processor)).rejects.toMatchObject({ code: 'CORRUPT', details: { lsn: 0 } });

    const skipping = await rig(records, { onBadRecord: 'skip' });
    const { seen, processor: p2 } = recording<unknown>({});
    expect(await skipping.run(p2)).toMatchObject({ recordsApplied: 2, recordsSkipped: 1 });
    expect(seen.map((s) => s.value)).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('a tombstone closes an account in the bank example', async () => {
    const r = await rig([
      { key: 'acct-1', value: { type: 'deposit', amount: 500 } },
      { key: 'acct-2', value: { type: 'deposit', amount: 700 } },
      { key: 'acct-1', value: null },
      { key: 'acct-2', value: { type: 'withdrawal', amount: 100 } },
    ]);
    await r.run(bank);
    const { lsn, entries } = await r.state();
    expect(lsn).toBe(3);
    expect([...entries]).toEqual([['account/acct-2', { balance: 575, count: 2, fees: 25 }]]);
  });
});

describe('the processor lifecycle', () => {
  it('init before the first record with the partition and where it starts; close after the last, also when apply fails', async () => {
    const r = await rig([{ key: 'a', value: 1 }, { key: 'b', value: 2 }, { key: 'c', value: 'boom' }]);
    const events: string[] = [];
    const processor: Processor<unknown, number> = {
      name: 'lifecycle',
      init: (ctx: ProcessorContext) => void events.push(`init ${ctx.partition} ${ctx.source} ${ctx.appliedLsn}`),
      apply: (record, state) => {
        if (record.value === 'boom') throw new Error('boom');
        events.push(`apply ${record.lsn}`);
        state.put(record.key!, record.value as number);
      },
      close: (ctx: ProcessorContext) => void events.push(`close ${ctx.appliedLsn}`),
    };
    await expect(r.run(processor)).rejects.toMatchObject({ code: 'PROCESSOR_FAILED', details: { lsn: 2 } });
    // Batches of 4: nothing of the failing batch committed, so close sees -1.
    expect(events).toEqual(['init p0 embedded:p0 -1', 'apply 0', 'apply 1', 'close -1']);
  });

  it('an init that throws stops the run before any record, as PROCESSOR_FAILED naming the hook', async () => {
    const r = await rig([{ key: 'a', value: 1 }]);
    let applied = 0;
    const processor: Processor = {
      name: 'bad-init',
      init: () => {
        throw new Error('no database connection');
      },
      apply: () => void applied++,
    };
    await expect(r.run(processor)).rejects.toMatchObject({ code: 'PROCESSOR_FAILED', details: { hook: 'init' } });
    expect(applied).toBe(0);
    expect((await r.state()).lsn).toBe(-1);
  });
});
