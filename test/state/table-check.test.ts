import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c, crc32cExtend, maskCrc } from '../../src/state/manifest.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { snappyUncompress } from '../../src/state/snappy.js';
import {
  BLOCK_TRAILER_SIZE,
  BlockType,
  FOOTER_SIZE,
  checkTableBytes,
  checkTableFile,
  parseBlock,
  readTableLayout,
  type BlockHandle,
  type TableBlock,
} from '../../src/state/table-check.js';
import { makeTempDir, removeDir } from '../helpers/fixtures.js';

// --- Fixtures: real tables written by LevelDB -------------------------------------------

let root: string;
/** Tables of a compressed PartitionState and the values written (key -> stored bytes);
 * tables written with compression off; a small table for exhaustive byte flips. */
let compressed: string[], compressedValues: Map<string, Buffer>, uncompressed: string[], small: string;

async function tables(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.ldb')).sort().map((f) => join(dir, f));
}

/** Runs of 1000 keys alternate between values that compress well (repetitive JSON) and
 * values that do not (random hex), so a table holds blocks of both storage types. */
function valueFor(i: number): unknown {
  return Math.floor(i / 1000) % 2 === 0 ? { user: `user-${i}`, note: 'lorem ipsum dolor '.repeat(5), tags: ['a', 'b'] } : randomBytes(50).toString('hex');
}

async function writeState(dir: string, keys: number): Promise<Map<string, Buffer>> {
  const state = await PartitionState.open(dir, { writeBufferSize: 64 * 1024 });
  const stored = new Map<string, Buffer>();
  for (let start = 0, lsn = 0; start < keys; start += 100, lsn++) {
    const batch = new Map<string, unknown>();
    for (let i = start; i < Math.min(start + 100, keys); i++) {
      const key = `k${String(i).padStart(6, '0')}`;
      const value = valueFor(i);
      batch.set(key, value);
      // PartitionState's layout: 'd:' + key -> 'j' + JSON.
      stored.set(`d:${key}`, Buffer.from(`j${JSON.stringify(value)}`));
    }
    await state.commit(batch, lsn);
  }
  await state.compactAll();
  await state.close();
  return stored;
}

beforeAll(async () => {
  root = await makeTempDir('table-check');
  // ~4 MB of values: more than one 2 MiB table after the full compaction.
  compressedValues = await writeState(join(root, 'compressed'), 36_000);
  compressed = await tables(join(root, 'compressed'));

  // PartitionState does not expose `compression`; write these directly.
  const plainDir = join(root, 'plain');
  const db = new ClassicLevel<string, string>(plainDir, { compression: false, writeBufferSize: 64 * 1024 });
  for (let start = 0; start < 5000; start += 250) {
    const puts = Array.from({ length: 250 }, (_, j) => ({ key: `k${String(start + j).padStart(6, '0')}`, value: JSON.stringify(valueFor(start + j)) }));
    await db.batch(puts.map((p) => ({ type: 'put' as const, ...p })));
  }
  await db.compactRange('k', 'l');
  await db.close();
  uncompressed = await tables(plainDir);

  await writeState(join(root, 'small'), 300);
  small = (await tables(join(root, 'small')))[0]!;
});

afterAll(async () => {
  await removeDir(root);
});

// --- Helpers -----------------------------------------------------------------------------

function flip(bytes: Buffer, pos: number, xor = 0xff): Buffer {
  const copy = Buffer.from(bytes);
  copy[pos] = copy[pos]! ^ xor;
  return copy;
}

/** `fn` throws a CairnError with code CORRUPT (and, if given, these details). */
const throwsCorrupt = (fn: () => unknown, details: Record<string, unknown> = {}) =>
  expect(fn).toThrow(expect.objectContaining({ name: 'CairnError', code: 'CORRUPT', details: expect.objectContaining(details) }));

/** checkTableFile rejects `path` with CORRUPT, naming the file in the details. */
const rejectsCorrupt = (path: string) =>
  expect(checkTableFile(path)).rejects.toMatchObject({ name: 'CairnError', code: 'CORRUPT', details: { scope: 'local-state', file: path } });

const of = (layout: TableBlock[], kind: TableBlock['kind']) => layout.filter((b) => b.kind === kind);

// --- Valid tables ------------------------------------------------------------------------

describe('valid tables', () => {
  it('every table of a real state passes, with the sha256 and size of the file', async () => {
    expect(compressed.length).toBeGreaterThanOrEqual(2);
    for (const path of [...compressed, ...uncompressed, small]) {
      const bytes = await readFile(path);
      expect(await checkTableFile(path)).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
    }
  });

  it('tiles the file with data, filter, metaindex and index blocks, snappy or not', async () => {
    for (const path of compressed) {
      const layout = readTableLayout(await readFile(path), path);
      expect(layout.map((b) => b.kind).slice(-3)).toEqual(['filter', 'metaindex', 'index']);
      // The snappy path is exercised: LevelDB compressed the index and some data blocks.
      expect(of(layout, 'index')[0]!.type).toBe(BlockType.Snappy);
      expect(of(layout, 'data').some((b) => b.type === BlockType.Snappy)).toBe(true);
      // Random hex does not shrink by 12.5%, so some data blocks are stored plain.
      expect(of(layout, 'data').some((b) => b.type === BlockType.None)).toBe(true);
    }
    for (const path of uncompressed) {
      const layout = readTableLayout(await readFile(path), path);
      expect(of(layout, 'data').length).toBeGreaterThan(1);
      expect(layout.every((b) => b.type === BlockType.None)).toBe(true);
    }
  });

  it('reads back every value LevelDB wrote, decompressing snappy data blocks', async () => {
    // A round trip against LevelDB's own compressor: every key, exactly once, right bytes.
    const seen = new Map<string, Buffer>();
    let snappyBlocks = 0;
    for (const path of compressed) {
      const bytes = await readFile(path);
      for (const block of of(readTableLayout(bytes, path), 'data')) {
        const stored = bytes.subarray(block.offset, block.offset + block.size);
        if (block.type === BlockType.Snappy) snappyBlocks++;
        const contents = block.type === BlockType.Snappy ? snappyUncompress(stored) : stored;
        for (const { key, value } of parseBlock(contents)) {
          const userKey = key.subarray(0, key.length - 8).toString('utf8'); // minus the 8-byte tag
          if (!userKey.startsWith('d:')) continue;
          seen.set(userKey, Buffer.from(value));
        }
      }
    }
    expect(snappyBlocks).toBeGreaterThan(10);
    // Compared by hand: a deep toEqual over 36k Buffers takes seconds.
    expect(seen.size).toBe(compressedValues.size);
    const wrong = [...compressedValues].filter(([k, v]) => !seen.get(k)?.equals(v)).map(([k]) => k);
    expect(wrong).toEqual([]);
  });
});

// --- Damaged tables ----------------------------------------------------------------------

describe('damaged tables', () => {
  it('rejects one changed byte in data blocks, the index block and the footer', async () => {
    const path = compressed[0]!;
    const bytes = await readFile(path);
    const layout = readTableLayout(bytes, path);
    const data = of(layout, 'data');
    const middle = data[Math.floor(data.length / 2)]!;
    const index = of(layout, 'index')[0]!;
    const footer = bytes.length - FOOTER_SIZE;
    const positions = {
      'first data block': 10,
      'middle data block': middle.offset + Math.floor(middle.size / 2),
      'a data block trailer type byte': data[1]!.offset + data[1]!.size,
      'a data block crc': data[1]!.offset + data[1]!.size + 2,
      'index block': index.offset + Math.floor(index.size / 2),
      'footer handle': footer + 1,
      'footer padding': footer + 39,
      'footer magic': bytes.length - 3,
    };
    for (const [where, pos] of Object.entries(positions)) {
      const damaged = join(root, `damaged-${where.replace(/ /g, '-')}.ldb`);
      await writeFile(damaged, flip(bytes, pos, 0x01));
      await rejectsCorrupt(damaged);
    }
  });

  it('rejects a table truncated to half, an empty file and a missing file', async () => {
    const bytes = await readFile(compressed[0]!);
    for (const [name, content] of [['half.ldb', bytes.subarray(0, bytes.length >> 1)], ['empty.ldb', Buffer.alloc(0)]] as const) {
      await writeFile(join(root, name), content);
      await rejectsCorrupt(join(root, name));
    }
    await rejectsCorrupt(join(root, 'no-such-table.ldb'));
    // Truncated by just one byte: the footer no longer ends the file.
    throwsCorrupt(() => checkTableBytes(bytes.subarray(0, bytes.length - 1), 'short'));
    // Caller-supplied details replace the default scope (downloaded files).
    throwsCorrupt(() => checkTableBytes(Buffer.alloc(10), 'remote/000005.ldb', { scope: 'download' }), { scope: 'download', file: 'remote/000005.ldb' });
  });

  it('rejects any single changed byte anywhere (property)', async () => {
    for (const path of [compressed[0]!, uncompressed[0]!]) {
      const bytes = await readFile(path);
      fc.assert(
        fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, xor) => {
          throwsCorrupt(() => checkTableBytes(flip(bytes, pos, xor), path));
        }),
        { numRuns: 150 },
      );
    }
  });

  it('rejects every changed byte outside data block contents (exhaustive, small table)', async () => {
    // Every byte is covered, including the footer padding (LevelDB skips it; we require
    // TableBuilder's zeros and canonical varints): nothing had to be excluded. Data block
    // contents are covered by the crc alone, which the property above samples.
    const bytes = await readFile(small);
    const layout = readTableLayout(bytes, small);
    const positions: number[] = [];
    for (const b of layout) {
      const from = b.kind === 'data' ? b.offset + b.size : b.offset;
      for (let p = from; p < b.offset + b.size + BLOCK_TRAILER_SIZE; p++) positions.push(p);
    }
    for (let p = bytes.length - FOOTER_SIZE; p < bytes.length; p++) positions.push(p);
    expect(positions.length).toBeGreaterThan(300);
    for (const pos of positions) {
      for (const xor of [0x01, 0x80, 0xff]) throwsCorrupt(() => checkTableBytes(flip(bytes, pos, xor), small));
    }
  });
});

// --- Structure, on hand-built tables whose crcs are all valid -----------------------------

const varint = (n: number): number[] => (n < 0x80 ? [n] : [(n % 0x80) | 0x80, ...varint(Math.floor(n / 0x80))]);
const encHandle = (h: BlockHandle) => Buffer.from([...varint(h.offset), ...varint(h.size)]);

/** A block as BlockBuilder lays it out, every entry a restart unless `restarts` is given. */
function blockOf(entries: Array<[string, Buffer]>, restarts?: number[]): Buffer {
  const parts: Buffer[] = [];
  const starts: number[] = [];
  let offset = 0;
  for (const [k, v] of entries) {
    const entry = Buffer.concat([Buffer.from([0, ...varint(k.length), ...varint(v.length)]), Buffer.from(k, 'latin1'), v]);
    starts.push(offset);
    offset += entry.length;
    parts.push(entry);
  }
  const points = restarts ?? (starts.length ? starts : [0]);
  const tail = Buffer.alloc(4 * (points.length + 1));
  points.forEach((p, i) => tail.writeUInt32LE(p, 4 * i));
  tail.writeUInt32LE(points.length, 4 * points.length);
  return Buffer.concat([...parts, tail]);
}

interface Shape {
  gap?: boolean;
  dataType?: number;
  extraIndexHandle?: (d0: BlockHandle) => BlockHandle;
  metaKey?: string;
  index?: (entries: Array<[string, Buffer]>) => { contents: Buffer; type: number };
}

/** Two data blocks, a filter, the metaindex and the index, laid out as TableBuilder does
 * (contents, type byte, masked crc of both), then the footer; `shape` bends one thing. */
function buildTable(shape: Shape = {}): Buffer {
  const parts: Buffer[] = shape.gap ? [Buffer.alloc(7)] : [];
  let offset = shape.gap ? 7 : 0;
  const block = (contents: Buffer, type = 0): BlockHandle => {
    const trailer = Buffer.from([type, 0, 0, 0, 0]);
    trailer.writeUInt32LE(maskCrc(crc32cExtend(crc32c(contents), trailer, 0, 1)), 1);
    parts.push(contents, trailer);
    offset += contents.length + BLOCK_TRAILER_SIZE;
    return { offset: offset - contents.length - BLOCK_TRAILER_SIZE, size: contents.length };
  };
  const d0 = block(blockOf([['a', Buffer.from('1')]]), shape.dataType ?? 0);
  const d1 = block(blockOf([['b', Buffer.from('2')]]));
  const filter = block(Buffer.from([0, 0, 0, 0, 11]));
  const meta = block(blockOf([[shape.metaKey ?? 'filter.leveldb.BuiltinBloomFilter2', encHandle(filter)]]));
  const entries: Array<[string, Buffer]> = [['a', encHandle(d0)], ['b', encHandle(d1)]];
  if (shape.extraIndexHandle) entries.push(['c', encHandle(shape.extraIndexHandle(d0))]);
  const { contents, type } = shape.index?.(entries) ?? { contents: blockOf(entries), type: 0 };
  const index = block(contents, type);
  const footer = Buffer.alloc(FOOTER_SIZE);
  Buffer.concat([encHandle(meta), encHandle(index)]).copy(footer);
  footer.writeUInt32LE(0x8b80fb57, 40); // the magic, fixed64 little-endian
  footer.writeUInt32LE(0xdb477524, 44);
  return Buffer.concat([...parts, footer]);
}

describe('structure checks', () => {
  it('accepts the hand-built table as it is', () => {
    expect(readTableLayout(buildTable(), 't').map((b) => b.kind)).toEqual(['data', 'data', 'filter', 'metaindex', 'index']);
  });

  it('rejects structural damage that every crc agrees with', () => {
    const bad: Record<string, Shape> = {
      'a gap before the first block': { gap: true },
      'a data block listed twice': { extraIndexHandle: (d0) => d0 },
      'a handle outside the file': { extraIndexHandle: () => ({ offset: 1 << 20, size: 10 }) },
      'an unknown meta block': { metaKey: 'stats.rows' },
      'an unknown block type': { dataType: 2 },
      'a snappy index that is not snappy': { index: (e) => ({ contents: blockOf(e), type: 1 }) },
      'a restart point inside an entry': { index: (e) => ({ contents: blockOf(e, [0, 3]), type: 0 }) },
      'an index entry running into the restarts': {
        index: (e) => ({ contents: Buffer.concat([Buffer.from([0, 1, 100]), blockOf(e).subarray(3)]), type: 0 }),
      },
    };
    for (const shape of Object.values(bad)) throwsCorrupt(() => checkTableBytes(buildTable(shape), 't'));
  });
});

// --- Snappy ------------------------------------------------------------------------------

describe('snappy', () => {
  const b = (...xs: number[]) => Buffer.from(xs);
  const ab = [0x61, 0x62]; // 'ab'

  it('decodes literals and all three copy forms, including overlapping copies', () => {
    expect(snappyUncompress(b(0)).length).toBe(0);
    // literal 'ab' (tag 1<<2), then copy-1 of 6 bytes at offset 2: repeats the pattern.
    expect(snappyUncompress(b(8, 0x04, ...ab, ((6 - 4) << 2) | 1, 2)).toString()).toBe('abababab');
    // copy-2: length 3, offset 2 (little-endian 16 bits).
    expect(snappyUncompress(b(5, 0x04, ...ab, ((3 - 1) << 2) | 2, 2, 0)).toString()).toBe('ababa');
    // copy-4: length 2, offset 1.
    expect(snappyUncompress(b(4, 0x04, ...ab, ((2 - 1) << 2) | 3, 1, 0, 0, 0)).toString()).toBe('abbb');
    // literal with a 1-byte length (tag 60 << 2): 100 bytes.
    const text = Buffer.alloc(100, 0x7a);
    expect(snappyUncompress(Buffer.concat([b(100, 60 << 2, 99), text]))).toEqual(text);
    // 2-byte length preamble (300) and a 2-byte literal length (tag 61 << 2).
    const long = randomBytes(300);
    expect(snappyUncompress(Buffer.concat([b(0xac, 0x02, 61 << 2, 0x2b, 0x01), long]))).toEqual(long);
  });

  it('rejects malformed input with CORRUPT', () => {
    const bad: Record<string, Buffer> = {
      empty: b(),
      'length preamble cut off': b(0x80),
      'length over 32 bits': b(0xff, 0xff, 0xff, 0xff, 0x1f),
      'length preamble over 5 bytes': b(0x80, 0x80, 0x80, 0x80, 0x80, 0x01),
      'impossible declared length': b(0xff, 0xff, 0xff, 0x0f, 0x04, ...ab),
      'literal past end of input': b(5, (5 - 1) << 2, ...ab),
      'literal length bytes cut off': b(100, 61 << 2, 0x10),
      'output longer than declared': b(1, 0x04, ...ab),
      'output shorter than declared': b(3, 0x04, ...ab),
      'copy with offset 0': b(6, 0x04, ...ab, 1, 0),
      'copy before the start': b(6, 0x04, ...ab, 1, 3),
      'copy overruns declared length': b(4, 0x04, ...ab, 1, 2),
      'copy-2 cut off': b(4, 0x04, ...ab, 0x06, 2),
      'copy-4 cut off': b(4, 0x04, ...ab, 0x07, 1, 0, 0),
      'copy-4 offset with bit 31': b(4, 0x04, ...ab, 0x07, 1, 0, 0, 0x80),
    };
    for (const input of Object.values(bad)) throwsCorrupt(() => snappyUncompress(input));
  });
});

// --- crc32c ------------------------------------------------------------------------------

describe('crc32c (slice-by-8)', () => {
  /** The byte-at-a-time algorithm the slice-by-8 version replaced. */
  const TABLE = Array.from({ length: 256 }, (_, i) => {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    return c >>> 0;
  });
  function bytewise(crc: number, data: Uint8Array, start = 0, end = data.length): number {
    let c = ~crc >>> 0;
    for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    return ~c >>> 0;
  }

  it('matches the known test vectors', () => {
    // From RFC 3720 B.4 and leveldb's util/crc32c_test.cc.
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('matches the byte-wise algorithm on random buffers, lengths, offsets and seeds', () => {
    const cuts = fc.tuple(fc.nat(), fc.nat(), fc.nat());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat({ max: 7 }), cuts, fc.nat({ max: 0xffffffff }), (bytes, shift, [a, b, prefix], seed) => {
        // A subarray at an odd byteOffset exercises the alignment prologue.
        const backing = new Uint8Array(bytes.length + shift);
        backing.set(bytes, shift);
        const data = backing.subarray(shift);
        const start = Math.min(a, b) % (bytes.length + 1);
        const end = start + (Math.max(a, b) % (bytes.length - start + 1));
        expect(crc32cExtend(seed, data, start, end)).toBe(bytewise(seed, data, start, end));
        expect(crc32cExtend(seed, data)).toBe(bytewise(seed, data));
        // Extending in two steps equals one pass.
        const cut = prefix % (data.length + 1);
        expect(crc32cExtend(crc32cExtend(0, data, 0, cut), data, cut)).toBe(crc32c(data));
      }),
      { numRuns: 500 },
    );
    const big = randomBytes(1 << 20);
    expect(crc32c(big)).toBe(bytewise(0, big));
    expect(crc32cExtend(7, big, 3, big.length - 5)).toBe(bytewise(7, big, 3, big.length - 5));
  });
});
