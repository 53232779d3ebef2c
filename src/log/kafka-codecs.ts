/**
 * Snappy, LZ4 and ZSTD for kafkajs, which implements only gzip itself and looks the others
 * up in its `CompressionCodecs` map (throwing "not implemented" until something is there).
 *
 * The packages are chosen so that `npm install` never needs a compiler: `snappy` and
 * `lz4-napi` are napi-rs addons shipped as prebuilt binaries per platform on the npm
 * registry (optional dependencies), and `@bokuweb/zstd-wasm` is WebAssembly, which runs
 * anywhere Node does. The node-gyp based packages (the ones older kafkajs codec plugins
 * depend on) fall back to building from source, which fails on hosts without a toolchain.
 * All three were checked both ways against Kafka 4.1's Java producer and consumer.
 *
 * Every codec loads its package on first use, so importing the log module (and running
 * Cairn with `log.compression: none` or gzip) never loads a native addon or compiles wasm.
 */
import { createRequire } from 'node:module';
import kafkajs, { type CompressionTypes } from 'kafkajs';
import type { KafkaCompression } from '../core/config.js';

// Not `import { CompressionCodecs } from 'kafkajs'`: kafkajs is CommonJS and Node's static
// analysis of its exports misses CompressionCodecs, so that named import fails at run time
// (the type checker cannot see it). The default import is the live module.exports object.
const { CompressionCodecs, CompressionTypes: Types } = kafkajs;


const TYPES: Record<KafkaCompression, CompressionTypes> = { none: Types.None, gzip: Types.GZIP, snappy: Types.Snappy, lz4: Types.LZ4, zstd: Types.ZSTD };

/** The kafkajs `compression` value for a name accepted in `log.compression`. */
export function compressionType(c: KafkaCompression): CompressionTypes {
  return TYPES[c];
}

/** The shape kafkajs calls: see node_modules/kafkajs/src/protocol/message/compression/gzip.js. */
export interface KafkaCodec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

let registered = false;

/** Makes kafkajs producers and consumers able to write and read snappy, lz4 and zstd batches. Idempotent. */
export function registerKafkaCodecs(): void {
  if (registered) return;
  // kafkajs calls the factory for every batch: hand back one shared, stateless codec.
  CompressionCodecs[Types.Snappy] = () => SNAPPY;
  CompressionCodecs[Types.LZ4] = () => LZ4;
  CompressionCodecs[Types.ZSTD] = () => ZSTD;
  registered = true;
}

/**
 * Wraps a codec's functions so that any failure (a corrupt batch, a package that will not
 * load) rejects with an Error naming the codec: kafkajs wraps it again, and without the
 * name a "corrupt input" deep in a consumer's logs does not say which decoder refused.
 */
function codec(name: string, compress: (b: Buffer) => Promise<Buffer>, decompress: (b: Buffer) => Promise<Buffer>): KafkaCodec {
  const guard = async (op: string, work: () => Promise<Buffer>): Promise<Buffer> => {
    try {
      return await work();
    } catch (err) {
      throw new Error(`${name}: cannot ${op}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };
  return {
    compress: (encoder) => guard('compress', () => compress(encoder.buffer)),
    decompress: (buffer) => guard('decompress', () => decompress(buffer)),
  };
}

// The codec packages are CommonJS: `require` gives module.exports under every loader, while
// `(await import(x)).default` is undefined for zstd-wasm under tsx (it honours __esModule).
const require = createRequire(import.meta.url);

/** Loads once; a failed load is forgotten so that a later batch tries again. */
function lazy<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  const forget = (err: unknown): never => {
    loading = undefined;
    throw err;
  };
  return () => (loading ??= load().catch(forget));
}

const asBuffer = (a: Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

// --- Snappy ---------------------------------------------------------------------------

const loadSnappy = lazy(async () => require('snappy') as typeof import('snappy'));

/**
 * Kafka's Java producer writes snappy through snappy-java's SnappyOutputStream ("xerial"
 * framing): this magic, a version and a compatible version (int32 BE each), then blocks of
 * `int32 BE length` + a raw snappy block. Other clients (librdkafka, kafkajs-snappy, this
 * module) write one raw snappy block; SnappyInputStream reads both, and so must we.
 */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = XERIAL_MAGIC.length + 8;

async function snappyUncompress(block: Buffer): Promise<Buffer> {
  const out = await (await loadSnappy()).uncompress(block, { asBuffer: true });
  return typeof out === 'string' ? Buffer.from(out) : out;
}

async function snappyDecompress(input: Buffer): Promise<Buffer> {
  if (input.length < XERIAL_HEADER_BYTES || !input.subarray(0, XERIAL_MAGIC.length).equals(XERIAL_MAGIC)) return snappyUncompress(input);
  const blocks: Buffer[] = [];
  let at = XERIAL_HEADER_BYTES;
  while (at < input.length) {
    if (at + 4 > input.length) throw new Error(`truncated xerial block header at byte ${at}`);
    const length = input.readUInt32BE(at);
    at += 4;
    if (at + length > input.length) throw new Error(`xerial block of ${length} bytes at byte ${at} runs past the end of the input`);
    blocks.push(await snappyUncompress(input.subarray(at, at + length)));
    at += length;
  }
  return Buffer.concat(blocks);
}

const SNAPPY = codec('snappy', async (b) => (await loadSnappy()).compress(b), snappyDecompress);

// --- LZ4 ------------------------------------------------------------------------------

/**
 * Kafka's LZ4 is the LZ4 frame format (message format v2; the header-checksum quirk of the
 * pre-0.10 v0 format is not handled). lz4-napi's default frame has independent 64 KiB
 * blocks and no content size, which is what Kafka's Java KafkaLZ4BlockInputStream reads.
 */
const loadLz4 = lazy(async () => require('lz4-napi') as typeof import('lz4-napi'));

const LZ4 = codec('lz4', async (b) => (await loadLz4()).compressFrame(b), async (b) => (await loadLz4()).decompressFrame(b));

// --- ZSTD -----------------------------------------------------------------------------

const ZSTD_LEVEL = 3; // zstd's own default, and the Java client's
const ZSTD_FIRST_CAPACITY = 1 << 20;
/** Above this a batch is refused rather than grow the wasm heap further (it never shrinks). */
const ZSTD_MAX_CAPACITY = 256 << 20;
const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_DST_TOO_SMALL = -70;
const ZSTD_ERRORS: Record<number, string> = {
  [-10]: 'not zstd data (unknown frame magic)',
  [-20]: 'corrupted data',
  [-22]: 'checksum mismatch',
  [-64]: 'out of memory',
  // Only seen when the first frame declares a size (see hasUnknownContentSize).
  [ZSTD_DST_TOO_SMALL]: 'output larger than the frame declares (several frames are not supported)',
  [-72]: 'truncated or trailing input',
};

const loadZstd = lazy(async () => {
  const zstd = require('@bokuweb/zstd-wasm') as typeof import('@bokuweb/zstd-wasm');
  await zstd.init(); // reads and instantiates the .wasm: once per process
  return zstd;
});

/** zstd-wasm reports failures as "Failed to compress with code N" (decompression included). */
function zstdCode(err: unknown): number | undefined {
  const m = err instanceof Error ? /code (-?\d+)/.exec(err.message) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * zstd-wasm sizes the output from the frame's content size, or else allocates
 * `defaultHeapSize`. Streaming compressors (Kafka's Java producer among them) leave the
 * content size out, so for such frames the capacity starts at max(1 MiB, 8 × input) and
 * doubles on "destination too small". When the first frame does declare its size there is
 * nothing to retry: the library ignores our capacity then (and a larger output means
 * several frames, which this library cannot size).
 */
function hasUnknownContentSize(b: Buffer): boolean {
  if (b.length < 5 || b.readUInt32LE(0) !== ZSTD_MAGIC) return false;
  const descriptor = b[4] ?? 0;
  return descriptor >> 6 === 0 && (descriptor & 0x20) === 0; // Frame_Content_Size_flag, Single_Segment_flag
}

async function zstdDecompress(input: Buffer): Promise<Buffer> {
  const zstd = await loadZstd();
  const retry = hasUnknownContentSize(input);
  let capacity = Math.min(ZSTD_MAX_CAPACITY, Math.max(ZSTD_FIRST_CAPACITY, 8 * input.length));
  for (;;) {
    try {
      return asBuffer(zstd.decompress(input, { defaultHeapSize: capacity }));
    } catch (err) {
      const code = zstdCode(err);
      if (retry && code === ZSTD_DST_TOO_SMALL) {
        if (capacity >= ZSTD_MAX_CAPACITY) throw new Error(`decompressed batch is larger than ${ZSTD_MAX_CAPACITY} bytes`, { cause: err });
        capacity = Math.min(2 * capacity, ZSTD_MAX_CAPACITY);
        continue;
      }
      if (code === undefined) throw err;
      throw new Error(`${ZSTD_ERRORS[code] ?? 'zstd error'} (ZSTD error ${code})`, { cause: err });
    }
  }
}

const ZSTD = codec('zstd', async (b) => asBuffer((await loadZstd()).compress(b, ZSTD_LEVEL)), zstdDecompress);
