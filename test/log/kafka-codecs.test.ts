import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import kafkajs from 'kafkajs';
import snappy from 'snappy';
import { beforeAll, describe, expect, it } from 'vitest';
import { KAFKA_COMPRESSIONS } from '../../src/core/config.js';
import { compressionType, registerKafkaCodecs, type KafkaCodec } from '../../src/log/kafka-codecs.js';

/**
 * The snappy, lz4 and zstd codecs as kafkajs sees them: every call goes through kafkajs's own
 * CompressionCodecs map, which is what its producer and consumer use. No broker needed: the
 * inputs other clients would write (xerial-framed snappy from the Java producer, zstd frames
 * without a content size, lz4 frames from the reference implementation) are built here or
 * embedded as fixtures made once with the zstd and lz4 CLIs.
 */

const { CompressionCodecs, CompressionTypes } = kafkajs;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const CODECS = [
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
  ['zstd', CompressionTypes.ZSTD],
] as const;
const codecOf = (type: (typeof CODECS)[number][1]) => CompressionCodecs[type]() as KafkaCodec;

/** `size` bytes cycling through `pattern`: what the CLI fixtures below were made from. */
const repeated = (pattern: string, size: number) => Buffer.alloc(size, pattern);

/** Deterministic mix of incompressible runs and repetitive runs (xorshift32). */
function mixed(size: number): Buffer {
  const out = Buffer.alloc(size);
  let s = 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  for (let at = 0; at < size; ) {
    const n = Math.min(size - at, 1 + (next() % 8192));
    if (next() & 1) for (let i = 0; i < n; i++) out[at + i] = next() & 0xff;
    else out.fill(`record-${at % 97}|`, at, at + n);
    at += n;
  }
  return out;
}

/** `yes`-like 3 MiB of 'cairn-codec-fixture\n' through `cat big | zstd -q -c -19` (zstd 1.5.4): stdin has no size, so neither has the frame. */
const ZSTD_NO_CONTENT_SIZE = Buffer.from(
  'KLUv/QRo5AAAoGNhaXJuLWNvZGVjLWZpeHR1cmUKAQDS/y+fTEQAAAABAP3/l08gRAAAAAEA/f85AAJEAAAAAQD9/zkAAkQAAAABAP3/OQACRAAAAAEA/f85AAJEAAAAAQD9/zkAAkQAAAABAP3/OQACRAAAAAEA/f85AAJEAAAAAQD9/zkAAkQAAAABAP3/OQACRAAAAAEA/f85AAJEAAAAAQD9/zkAAkQAAAABAP3/OQACRAAAAAEA/f85AAJEAAAAAQD9/zkAAkQAAAABAP3/OQACRAAAAAEA/f85AAJEAAAAAQD9/zkAAkQAAAABAP3/OQACRAAAAAEA/f85AAJEAAAAAQD9/zkAAkQAAAABAP3/OQACRQAAAAEA/f85AALenl7z',
  'base64',
);

/** 140000 bytes of the same pattern through `lz4 -q -B4 -9 -c` (lz4 1.9.4): three 64 KiB blocks, content checksum. */
const LZ4_CLI_FRAME = Buffer.from(
  'BCJNGGRApx8BAAD/BWNhaXJuLWNvZGVjLWZpeHR1cmUKFAD/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////1FAtZml4dB8BAAD/BXVyZQpjYWlybi1jb2RlYy1maXh0FAD/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////1FBvZGVjLUEAAAD/BWZpeHR1cmUKY2Fpcm4tY29kZWMtFAD/////////////////////////////////////////////1lB0dXJlCgAAAAByGnIn',
  'base64',
);

beforeAll(() => {
  registerKafkaCodecs();
});

describe('registerKafkaCodecs', () => {
  it('puts a codec factory for snappy, lz4 and zstd in kafkajs’s map, once', () => {
    const before = { ...CompressionCodecs };
    registerKafkaCodecs();
    expect(CompressionCodecs).toEqual(before);
    expect(typeof CompressionCodecs[CompressionTypes.ZSTD]).toBe('function');
    for (const [, type] of CODECS) expect(codecOf(type)).toMatchObject({ compress: expect.any(Function), decompress: expect.any(Function) });
  });

  it('loads no codec package until a codec is used', async () => {
    // A fresh process: in this one the packages are already loaded by the other tests.
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const loaded = () => Object.keys(require.cache).filter((k) => /snappy|lz4-napi|zstd-wasm/.test(k)).length;
      const { registerKafkaCodecs } = await import('./src/log/kafka-codecs.ts');
      registerKafkaCodecs();
      const afterRegister = loaded();
      const kafkajs = (await import('kafkajs')).default;
      await kafkajs.CompressionCodecs[kafkajs.CompressionTypes.ZSTD]().compress({ buffer: Buffer.from('x') });
      console.log(JSON.stringify({ afterRegister, afterUse: loaded() }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT });
    const { afterRegister, afterUse } = JSON.parse(stdout) as { afterRegister: number; afterUse: number };
    expect(afterRegister).toBe(0);
    expect(afterUse).toBeGreaterThan(0);
  });
});

describe('compressionType', () => {
  it('maps every accepted name onto kafkajs’s CompressionTypes', () => {
    expect(KAFKA_COMPRESSIONS.map(compressionType)).toEqual([
      CompressionTypes.None,
      CompressionTypes.GZIP,
      CompressionTypes.Snappy,
      CompressionTypes.LZ4,
      CompressionTypes.ZSTD,
    ]);
  });
});

describe.each(CODECS)('%s codec', (name, type) => {
  it.each([
    ['empty', Buffer.alloc(0)],
    ['small', Buffer.from('{"key":"k1","value":"v1"}')],
    ['3 MiB mixed', mixed(3 * 1024 * 1024 + 17)],
  ])('round-trips %s input', async (_, input) => {
    const codec = codecOf(type);
    const compressed = await codec.compress({ buffer: input });
    expect(Buffer.isBuffer(compressed)).toBe(true);
    const output = await codec.decompress(compressed);
    expect(Buffer.isBuffer(output)).toBe(true);
    expect(output.equals(input)).toBe(true);
  });

  it('rejects corrupt input with an error naming the codec', async () => {
    const garbage = Buffer.from('this is not compressed data, whatever the codec');
    await expect(codecOf(type).decompress(garbage)).rejects.toThrow(new RegExp(`^${name}: cannot decompress: `));
    const truncated = (await codecOf(type).compress({ buffer: mixed(100_000) })).subarray(0, 5000);
    await expect(codecOf(type).decompress(truncated)).rejects.toThrow(new RegExp(`^${name}: cannot decompress: `));
  });
});

describe('snappy', () => {
  const MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
  const int32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const block = (data: Buffer) => {
    const c = snappy.compressSync(data);
    return Buffer.concat([int32(c.length), c]);
  };
  const xerial = (...blocks: Buffer[]) => Buffer.concat([MAGIC, int32(1), int32(1), ...blocks]);
  const one = Buffer.from('first block, as SnappyOutputStream writes it; ');
  const two = mixed(70_000);

  it('reads the xerial framing of the Java producer (snappy-java SnappyOutputStream)', async () => {
    const out = await codecOf(CompressionTypes.Snappy).decompress(xerial(block(one), block(two)));
    expect(out.equals(Buffer.concat([one, two]))).toBe(true);
    expect((await codecOf(CompressionTypes.Snappy).decompress(xerial())).length).toBe(0);
  });

  it('writes a raw snappy block, which Java’s SnappyInputStream also reads', async () => {
    const c = await codecOf(CompressionTypes.Snappy).compress({ buffer: one });
    expect(c.subarray(0, 8).equals(MAGIC)).toBe(false);
    expect(snappy.uncompressSync(c)).toEqual(one);
  });

  it('rejects truncated xerial input, naming the codec', async () => {
    const whole = xerial(block(one), block(two));
    await expect(codecOf(CompressionTypes.Snappy).decompress(whole.subarray(0, whole.length - 10))).rejects.toThrow(/^snappy: cannot decompress: xerial block/);
    await expect(codecOf(CompressionTypes.Snappy).decompress(Buffer.concat([xerial(block(one)), Buffer.from([0, 0])]))).rejects.toThrow(
      /^snappy: cannot decompress: truncated xerial block header/,
    );
  });
});

describe('lz4', () => {
  it('reads a frame written by the lz4 CLI (several blocks, content checksum)', async () => {
    const out = await codecOf(CompressionTypes.LZ4).decompress(LZ4_CLI_FRAME);
    expect(out.equals(repeated('cairn-codec-fixture\n', 140_000))).toBe(true);
  });

  it('writes the LZ4 frame format', async () => {
    const c = await codecOf(CompressionTypes.LZ4).compress({ buffer: Buffer.from('x') });
    expect(c.readUInt32LE(0)).toBe(0x184d2204);
  });
});

describe('zstd', () => {
  it('reads a frame without a content size and larger than 1 MiB (streaming producers)', async () => {
    // Frame_Header_Descriptor: no Frame_Content_Size (bits 6-7), not Single_Segment (bit 5).
    // If the fixture ever had a size, this test would stop covering the growing-buffer path.
    expect(ZSTD_NO_CONTENT_SIZE.readUInt32LE(0)).toBe(0xfd2fb528);
    const descriptor = ZSTD_NO_CONTENT_SIZE[4] ?? 0xff;
    expect(descriptor >> 6).toBe(0);
    expect(descriptor & 0x20).toBe(0);
    const out = await codecOf(CompressionTypes.ZSTD).decompress(ZSTD_NO_CONTENT_SIZE);
    expect(out.length).toBe(3 * 1024 * 1024);
    expect(out.equals(repeated('cairn-codec-fixture\n', 3 * 1024 * 1024))).toBe(true);
  });

  it('writes a zstd frame', async () => {
    const c = await codecOf(CompressionTypes.ZSTD).compress({ buffer: Buffer.from('x') });
    expect(c.readUInt32LE(0)).toBe(0xfd2fb528);
  });

  it('rejects, rather than truncates, several frames whose first declares its size (not supported)', async () => {
    const zstd = codecOf(CompressionTypes.ZSTD);
    const frames = Buffer.concat([await zstd.compress({ buffer: Buffer.from('a'.repeat(100)) }), await zstd.compress({ buffer: Buffer.from('b'.repeat(100)) })]);
    await expect(zstd.decompress(frames)).rejects.toThrow(/^zstd: cannot decompress: output larger than the frame declares/);
  });
});
