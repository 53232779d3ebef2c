import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { ClassicLevel } from 'classic-level';
import {
  BLOCK_SIZE,
  HEADER_SIZE,
  ManifestFollower,
  crc32c,
  crc32cExtend,
  decodeVersionEdit,
  maskCrc,
  parseCurrent,
  parseManifest,
  readLogRecords,
  tableFileName,
  unmaskCrc,
} from '../../src/state/manifest.js';
import { it } from '../helpers/fixtures.js';

// --- A writer mirroring leveldb's log::Writer::AddRecord, to build test inputs. ---------

function writeLog(records: Buffer[]): Buffer {
  const out: Buffer[] = [];
  let blockOffset = 0;
  for (const record of records) {
    let left = record.length;
    let ptr = 0;
    let begin = true;
    do {
      const leftover = BLOCK_SIZE - blockOffset;
      if (leftover < HEADER_SIZE) {
        if (leftover > 0) out.push(Buffer.alloc(leftover));
        blockOffset = 0;
      }
      const avail = BLOCK_SIZE - blockOffset - HEADER_SIZE;
      const n = Math.min(left, avail);
      const end = left === n;
      const type = begin && end ? 1 : begin ? 2 : end ? 4 : 3;
      const header = Buffer.alloc(HEADER_SIZE);
      const payload = record.subarray(ptr, ptr + n);
      header.writeUInt32LE(maskCrc(crc32cExtend(crc32c(Buffer.from([type])), payload)), 0);
      header.writeUInt16LE(n, 4);
      header[6] = type;
      out.push(header, payload);
      blockOffset += HEADER_SIZE + n;
      ptr += n;
      left -= n;
      begin = false;
    } while (left > 0);
  }
  return Buffer.concat(out);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n >= 0x80) {
    bytes.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}
const lp = (b: Buffer | string) => {
  const buf = typeof b === 'string' ? Buffer.from(b) : b;
  return Buffer.concat([varint(buf.length), buf]);
};
const ikey = (user: string) => Buffer.concat([Buffer.from(user), Buffer.from([1, 0, 0, 0, 0, 0, 0, 0])]);

interface EditSpec {
  comparator?: string;
  logNumber?: number;
  nextFile?: number;
  lastSequence?: number;
  prevLog?: number;
  compact?: Array<[number, string]>;
  deleted?: Array<[number, number]>;
  added?: Array<[number, number, number]>; // level, number, size
}

/** VersionEdit::EncodeTo field order. */
function edit(e: EditSpec): Buffer {
  const parts: Buffer[] = [];
  if (e.comparator !== undefined) parts.push(varint(1), lp(e.comparator));
  if (e.logNumber !== undefined) parts.push(varint(2), varint(e.logNumber));
  if (e.prevLog !== undefined) parts.push(varint(9), varint(e.prevLog));
  if (e.nextFile !== undefined) parts.push(varint(3), varint(e.nextFile));
  if (e.lastSequence !== undefined) parts.push(varint(4), varint(e.lastSequence));
  for (const [level, key] of e.compact ?? []) parts.push(varint(5), varint(level), lp(ikey(key)));
  for (const [level, n] of e.deleted ?? []) parts.push(varint(6), varint(level), varint(n));
  for (const [level, n, size] of e.added ?? []) parts.push(varint(7), varint(level), varint(n), varint(size), lp(ikey('a')), lp(ikey('z')));
  return Buffer.concat(parts);
}

describe('crc32c', () => {
  it('matches the RFC 3720 / leveldb crc32c_test vectors', () => {
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.from('hello world'))).toBe(crc32cExtend(crc32c(Buffer.from('hello ')), Buffer.from('world')));
  });

  it('masks and unmasks as leveldb does', () => {
    const crc = crc32c(Buffer.from('foo'));
    expect(maskCrc(crc)).not.toBe(crc);
    expect(maskCrc(maskCrc(crc))).not.toBe(crc);
    expect(unmaskCrc(maskCrc(crc))).toBe(crc);
    expect(unmaskCrc(unmaskCrc(maskCrc(maskCrc(crc))))).toBe(crc);
  });
});

describe('log format', () => {
  it('reads records spanning blocks, including exact block fits and trailers', () => {
    const records = [
      Buffer.alloc(0),
      Buffer.from('small'),
      Buffer.alloc(BLOCK_SIZE * 2 + 123, 7), // FIRST, MIDDLE, LAST
      Buffer.alloc(BLOCK_SIZE - HEADER_SIZE * 2 - 5 - 123 - 3, 1), // leaves a short trailer
      Buffer.from('after-trailer'),
      Buffer.alloc(100_000, 9),
    ];
    const buf = writeLog(records);
    const got = readLogRecords(buf);
    expect(got.records).toEqual(records);
    expect(got.validLength).toBe(buf.length);
  });

  it('treats a truncated final record as end of file', () => {
    const records = [Buffer.from('one'), Buffer.alloc(50_000, 2)];
    const buf = writeLog(records);
    const whole = writeLog([records[0]!]).length;
    for (const cut of [whole, whole + 3, whole + HEADER_SIZE + 10, BLOCK_SIZE, BLOCK_SIZE + 5, buf.length - 1]) {
      const got = readLogRecords(buf.subarray(0, cut));
      expect(got.records).toEqual([records[0]]);
      expect(got.validLength).toBe(whole);
    }
    expect(readLogRecords(Buffer.alloc(0)).records).toEqual([]);
  });

  it('fails with CORRUPT on a checksum mismatch, a bad type or an orphan fragment', () => {
    const buf = writeLog([Buffer.from('one'), Buffer.from('two')]);
    const flipped = Buffer.from(buf);
    flipped[HEADER_SIZE + 1]! ^= 0x01;
    expect(() => readLogRecords(flipped)).toThrow(expect.objectContaining({ code: 'CORRUPT' }));

    const badType = Buffer.from(buf);
    badType[6] = 9;
    expect(() => readLogRecords(badType)).toThrow(expect.objectContaining({ code: 'CORRUPT' }));

    // A LAST fragment with no FIRST before it.
    const big = writeLog([Buffer.alloc(BLOCK_SIZE + 10, 3)]);
    expect(() => readLogRecords(big.subarray(BLOCK_SIZE))).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
  });

  it('skips zero-filled preallocated space', () => {
    const buf = Buffer.concat([writeLog([Buffer.from('x')]), Buffer.alloc(100)]);
    expect(readLogRecords(buf).records).toEqual([Buffer.from('x')]);
  });
});

describe('VersionEdit and parseManifest', () => {
  it('decodes every tag', () => {
    const e = decodeVersionEdit(edit({ comparator: 'leveldb.BytewiseComparator', logNumber: 5, prevLog: 0, nextFile: 2 ** 40, lastSequence: 300, compact: [[1, 'k']], deleted: [[2, 9]], added: [[3, 10, 4096]] }));
    expect(e).toMatchObject({ comparator: 'leveldb.BytewiseComparator', logNumber: 5, prevLogNumber: 0, nextFile: 2 ** 40, lastSequence: 300 });
    expect(e.deletedFiles).toEqual([{ level: 2, number: 9 }]);
    expect(e.newFiles).toMatchObject([{ level: 3, number: 10, size: 4096 }]);
    expect(e.compactPointers).toHaveLength(1);
  });

  it('rejects unknown tags, bad levels and truncated fields with CORRUPT', () => {
    expect(() => decodeVersionEdit(Buffer.from([8, 1]))).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
    expect(() => decodeVersionEdit(Buffer.concat([varint(6), varint(7), varint(1)]))).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
    expect(() => decodeVersionEdit(Buffer.from([2, 0x80]))).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
    expect(() => decodeVersionEdit(Buffer.concat([varint(1), varint(10), Buffer.from('abc')]))).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
  });

  it('applies edits in order: deletions before additions within an edit', () => {
    const buf = writeLog([
      edit({ comparator: 'leveldb.BytewiseComparator', added: [[0, 4, 100], [0, 5, 200]] }),
      edit({ logNumber: 6, nextFile: 8, lastSequence: 10, added: [[0, 7, 300]] }),
      // Compaction: 4 and 7 merged into 8 at level 1; 5 moved trivially to level 1.
      edit({ deleted: [[0, 4], [0, 7], [0, 5]], added: [[1, 8, 400], [1, 5, 200]] }),
      // A deletion at the wrong level leaves the file alone, as LevelDB's per-level sets do.
      edit({ deleted: [[0, 8]], nextFile: 9, lastSequence: 20 }),
    ]);
    const m = parseManifest(buf);
    expect(m.comparator).toBe('leveldb.BytewiseComparator');
    expect(m).toMatchObject({ logNumber: 6, nextFile: 9, lastSequence: 20, edits: 4 });
    expect([...m.live].sort((a, b) => a[0] - b[0])).toEqual([
      [5, { level: 1, size: 200 }],
      [8, { level: 1, size: 400 }],
    ]);
  });

  it('names tables and reads CURRENT', () => {
    expect(tableFileName(45)).toBe('000045.ldb');
    expect(tableFileName(1234567, 'sst')).toBe('1234567.sst');
    expect(parseCurrent('MANIFEST-000012\n')).toBe('MANIFEST-000012');
    expect(() => parseCurrent('MANIFEST-000012')).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
    expect(() => parseCurrent('../etc/passwd\n')).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
  });
});

describe('parseManifest on a real LevelDB', () => {
  async function liveFromDisk(dir: string) {
    const manifestName = parseCurrent(await readFile(join(dir, 'CURRENT'), 'utf8'));
    return parseManifest(await readFile(join(dir, manifestName)));
  }

  async function tablesOnDisk(dir: string): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const name of await readdir(dir)) {
      const m = /^(\d+)\.(ldb|sst)$/.exec(name);
      if (m) out.set(Number(m[1]), (await stat(join(dir, name))).size);
    }
    return out;
  }

  it('matches the table files after many writes, compactions and reopens', async ({ tmp: dir }) => {
    const value = 'v'.repeat(200);
    for (let round = 0; round < 3; round++) {
      const db = new ClassicLevel<string, string>(dir, { writeBufferSize: 64 * 1024 });
      await db.open();
      for (let batch = 0; batch < 40; batch++) {
        const ops = Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: `k${(batch * 200 + i * 7919 + round) % 20_000}`.padEnd(12, '-'), value }));
        await db.batch(ops);
      }
      if (round === 1) await db.compactRange('k', 'l');
      await db.clear({ gte: 'k1', lt: 'k2' });
      // While open, the installed version (leveldb.sstables) lists the same files once no
      // compaction is between writing its MANIFEST record and installing the version.
      let agreed = false;
      for (let i = 0; i < 100 && !agreed; i++) {
        const fromManifest = [...(await liveFromDisk(dir)).live.keys()].sort((a, b) => a - b);
        const listed = [...db.getProperty('leveldb.sstables').matchAll(/^ *(\d+):(\d+)\[/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
        agreed = JSON.stringify(fromManifest) === JSON.stringify(listed);
        if (!agreed) await new Promise((r) => setTimeout(r, 20));
      }
      expect(agreed).toBe(true);
      await db.close();
    }
    // Every table the MANIFEST names is on disk with the recorded size. The converse need
    // not hold: a compaction interrupted by close() leaves its output file behind until the
    // next open's DeleteObsoleteFiles, which is why a capture never copies a folder listing.
    const m = await liveFromDisk(dir);
    const disk = await tablesOnDisk(dir);
    // How many tables survive depends on when background compactions ran; two levels (below)
    // already need at least two.
    expect(m.live.size).toBeGreaterThanOrEqual(2);
    for (const [n, t] of m.live) expect(disk.get(n), tableFileName(n)).toBe(t.size);
    expect(m.comparator).toBe('leveldb.BytewiseComparator');
    expect(m.lastSequence).toBeGreaterThan(0);
    expect(new Set([...m.live.values()].map((t) => t.level)).size).toBeGreaterThan(1);
  });

  it('ManifestFollower, reading the growing file step by step, agrees with a fresh parse every time', async ({ tmp: dir }) => {
    const follower = new ManifestFollower();
    const value = 'v'.repeat(300);
    let steps = 0;
    let grewAcrossBlocks = false;
    for (let round = 0; round < 2; round++) {
      // Each open starts a new MANIFEST: the follower must notice and start over. Long keys
      // make long edits (each new table records its smallest and largest key), so the file
      // crosses 32 KiB blocks and records fragment across them.
      const db = new ClassicLevel<string, string>(dir, { writeBufferSize: 64 * 1024 });
      await db.open();
      for (let batch = 0; batch < 60; batch++) {
        await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `k${(batch * 100 + i * 31 + round * 7) % 9000}`.padEnd(1500, '.'), value })));
        if (batch % 20 === 19) await db.compactRange('k', 'l');
        const name = parseCurrent(await readFile(join(dir, 'CURRENT'), 'utf8'));
        const bytes = await readFile(join(dir, name));
        const fresh = parseManifest(bytes);
        const followed = follower.follow(name, bytes);
        expect(followed.validLength).toBe(fresh.validLength);
        expect([...followed.live].sort(([a], [b]) => a - b)).toEqual([...fresh.live].sort(([a], [b]) => a - b));
        expect(followed.lastSequence).toBe(fresh.lastSequence);
        expect(followed.edits).toBe(fresh.edits);
        grewAcrossBlocks ||= bytes.length > BLOCK_SIZE;
        steps++;
      }
      await db.close();
    }
    expect(steps).toBe(120);
    expect(grewAcrossBlocks).toBe(true);
  });

  it('ManifestFollower starts over when the bytes it already read change', () => {
    const follower = new ManifestFollower();
    const a = writeLog([edit({ added: [[0, 5, 10]] })]);
    expect([...follower.follow('MANIFEST-000002', a).live.keys()]).toEqual([5]);
    const b = writeLog([edit({ added: [[0, 6, 10]] }), edit({ added: [[1, 7, 10]] })]);
    expect([...follower.follow('MANIFEST-000002', b).live.keys()].sort()).toEqual([6, 7]);
  });
});

