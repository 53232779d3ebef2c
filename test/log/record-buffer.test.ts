import fc from 'fast-check';
import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { RecordBuffer, decodeMessage, messageBytes } from '../../src/log/kafka-buffer.js';

/**
 * The read-ahead buffer of a Kafka partition reader: fetched chunks in offset order (with the
 * gaps Kafka leaves: transaction markers, compaction), served from the front. Checked against
 * a model (a sorted list of pending LSNs and the chunks still holding one), plus the decoding
 * of what it hands out.
 */

function message(lsn: number, value: string | null = `v${lsn}`, key: string | Buffer | null = `k${lsn}`, headers?: KafkaMessage['headers']): KafkaMessage {
  return {
    key: typeof key === 'string' ? Buffer.from(key) : key,
    value: value === null ? null : Buffer.from(value),
    timestamp: String(1_700_000_000_000 + lsn),
    offset: String(lsn),
    attributes: 0,
    size: 0,
    ...(headers ? { headers } : {}),
  } as KafkaMessage;
}

/** Pushes one fetched chunk of these LSNs (ascending), costing `bytes`. */
function push(buffer: RecordBuffer, lsns: number[], bytes = lsns.length * 10): void {
  buffer.push(
    lsns.map((l) => message(l)),
    Float64Array.from(lsns),
    bytes,
  );
}

const lsnsOf = (records: Array<{ lsn: number }>) => records.map((r) => r.lsn);

describe('RecordBuffer', () => {
  it('starts empty; an empty chunk is ignored', () => {
    const b = new RecordBuffer();
    expect(b.isEmpty).toBe(true);
    push(b, [], 99);
    expect(b.isEmpty).toBe(true);
    expect(b.bytes).toBe(0);
    expect(b.take(0, 10)).toEqual([]);
  });

  it('takes up to max records across chunks, in order, from the front', () => {
    const b = new RecordBuffer();
    push(b, [0, 1, 2], 30);
    push(b, [3, 4], 20);
    expect(lsnsOf(b.take(0, 2))).toEqual([0, 1]);
    expect(lsnsOf(b.take(2, 2))).toEqual([2, 3]);
    expect(lsnsOf(b.take(4, 10))).toEqual([4]);
    expect(b.isEmpty).toBe(true);
    expect(b.bytes).toBe(0);
  });

  it('drops what lies below `from`, across gaps and whole chunks', () => {
    const b = new RecordBuffer();
    push(b, [10, 12, 15]); // gaps: offsets 11, 13, 14 hold no record
    push(b, [16, 20]);
    expect(lsnsOf(b.take(13, 10))).toEqual([15, 16, 20]);

    push(b, [21, 22]);
    push(b, [30, 31]);
    expect(lsnsOf(b.take(31, 10))).toEqual([31]);
    expect(b.isEmpty).toBe(true);
  });

  it('stops at toLsn and keeps what lies beyond it for the next take', () => {
    const b = new RecordBuffer();
    push(b, [0, 1, 2, 5, 6], 50);
    expect(lsnsOf(b.take(0, 100, 3))).toEqual([0, 1, 2]);
    expect(b.isEmpty).toBe(false);
    expect(b.bytes).toBe(50); // a chunk counts in full until its last message is taken
    expect(lsnsOf(b.take(0, 100, 4))).toEqual([]);
    expect(lsnsOf(b.take(0, 100, 5))).toEqual([5]);
    expect(lsnsOf(b.take(0, 100))).toEqual([6]);
    expect(b.bytes).toBe(0);
  });

  it('a toLsn below from takes nothing but still drops below from', () => {
    const b = new RecordBuffer();
    push(b, [0, 1, 2, 3]);
    expect(b.take(2, 10, 1)).toEqual([]);
    expect(lsnsOf(b.take(0, 10))).toEqual([2, 3]);
  });

  it('max 0 takes nothing', () => {
    const b = new RecordBuffer();
    push(b, [0, 1]);
    expect(b.take(0, 0)).toEqual([]);
    expect(lsnsOf(b.take(0, 5))).toEqual([0, 1]);
  });

  it('bytes count a chunk until its last message goes; dropBelow and clear release them', () => {
    const b = new RecordBuffer();
    push(b, [0, 1, 2], 300);
    push(b, [3, 4], 200);
    expect(b.bytes).toBe(500);
    b.take(0, 2);
    expect(b.bytes).toBe(500);
    b.take(0, 1);
    expect(b.bytes).toBe(200);
    b.dropBelow(4);
    expect(b.bytes).toBe(200);
    b.dropBelow(5);
    expect([b.bytes, b.isEmpty]).toEqual([0, true]);

    push(b, [7, 8], 70);
    b.clear();
    expect([b.bytes, b.isEmpty]).toEqual([0, true]);
    push(b, [9], 9); // usable after clear, from a fresh head
    expect(lsnsOf(b.take(0, 5))).toEqual([9]);
  });

  it('property: take, dropBelow and clear follow a sorted-list model; bytes are those of chunks still holding a record', () => {
    type Op = { op: 'push'; gaps: number[]; bytes: number } | { op: 'take'; from: number; max: number; to: number | undefined } | { op: 'drop'; below: number } | { op: 'clear' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 3, arbitrary: fc.record({ op: fc.constant('push' as const), gaps: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 8 }), bytes: fc.integer({ min: 1, max: 1000 }) }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('take' as const), from: fc.integer({ min: 0, max: 80 }), max: fc.integer({ min: 0, max: 6 }), to: fc.option(fc.integer({ min: 0, max: 80 }), { nil: undefined }) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('drop' as const), below: fc.integer({ min: 0, max: 80 }) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const b = new RecordBuffer();
        // The model: each chunk's pending LSNs and its bytes.
        let chunks: Array<{ pending: number[]; bytes: number }> = [];
        let next = 0;
        const dropBelow = (lsn: number) => {
          for (const c of chunks) c.pending = c.pending.filter((l) => l >= lsn);
        };
        for (const o of ops) {
          if (o.op === 'push') {
            const lsns = o.gaps.map((g) => (next += g) - 1);
            push(b, lsns, o.bytes);
            if (lsns.length > 0) chunks.push({ pending: lsns, bytes: o.bytes });
          } else if (o.op === 'take') {
            dropBelow(o.from);
            const to = o.to ?? Number.MAX_SAFE_INTEGER;
            const expected = chunks
              .flatMap((c) => c.pending)
              .filter((l) => l <= to)
              .slice(0, o.max);
            for (const c of chunks) c.pending = c.pending.filter((l) => !expected.includes(l));
            const taken = o.to === undefined ? b.take(o.from, o.max) : b.take(o.from, o.max, o.to);
            expect(lsnsOf(taken)).toEqual(expected);
          } else if (o.op === 'drop') {
            dropBelow(o.below);
            b.dropBelow(o.below);
          } else {
            chunks = [];
            next = 0; // a reader that clears may start over from anywhere, below what it held
            b.clear();
          }
          chunks = chunks.filter((c) => c.pending.length > 0);
          expect(b.isEmpty).toBe(chunks.length === 0);
          expect(b.bytes).toBe(chunks.reduce((sum, c) => sum + c.bytes, 0));
        }
        // Whatever is left comes out in order.
        expect(lsnsOf(b.take(0, Number.MAX_SAFE_INTEGER))).toEqual(chunks.flatMap((c) => c.pending));
      }),
      { numRuns: 300 },
    );
  });

  it('hands out decoded records: the message at each LSN, with its bytes', () => {
    const b = new RecordBuffer();
    b.push([message(4, 'four', 'key-4'), message(9, null, null)], Float64Array.from([4, 9]), 1);
    const [a, tomb] = b.take(0, 10);
    expect(a).toEqual({ lsn: 4, key: 'key-4', keyBytes: Buffer.from('key-4'), value: Buffer.from('four'), headers: [], timestamp: 1_700_000_000_004 });
    expect(tomb).toEqual({ lsn: 9, key: null, keyBytes: null, value: null, headers: [], timestamp: 1_700_000_000_009 });
  });
});

describe('decodeMessage', () => {
  it('a key that is not UTF-8 keeps its bytes and has no text key', () => {
    const bad = Buffer.from([0xff, 0xfe]);
    const r = decodeMessage(message(0, 'v', bad), 0);
    expect(r.key).toBeNull();
    expect(r.keyBytes).toEqual(bad);
  });

  it('headers become Kafka\'s list: names in order, a repeated name\'s values in order, strings as bytes, missing values null', () => {
    const r = decodeMessage(message(0, 'v', 'k', { a: Buffer.from('1'), b: ['x', Buffer.from('y')], c: undefined, d: 'text' }), 7);
    expect(r.lsn).toBe(7);
    expect(r.headers).toEqual([
      { key: 'a', value: Buffer.from('1') },
      { key: 'b', value: Buffer.from('x') },
      { key: 'b', value: Buffer.from('y') },
      { key: 'c', value: null },
      { key: 'd', value: Buffer.from('text') },
    ]);
  });
});

describe('messageBytes', () => {
  it('is key + value bytes plus a fixed overhead, null parts counting 0', () => {
    const overhead = messageBytes(message(0, null, null));
    expect(overhead).toBeGreaterThan(0);
    expect(messageBytes(message(0, 'abcde', 'xyz'))).toBe(overhead + 8);
    expect(messageBytes(message(0, 'abcde', null))).toBe(overhead + 5);
  });
});
