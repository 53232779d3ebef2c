import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CairnError } from '../core/errors.js';
import { crc32cExtend, unmaskCrc } from './manifest.js';
import { LOCAL_STATE } from './integrity.js';
import { snappyUncompress } from './snappy.js';

/**
 * A verifier for LevelDB table files (.ldb), run by checkpoints before a table is published.
 *
 * Why: LevelDB 1.20 checks block crcs only when ReadOptions.verify_checksums is set, and
 * classic-level offers no way to set it, so a damaged byte in a local table silently reads
 * back as a wrong value, and a checkpoint would copy the damage to the object store.
 *
 * The format, mirrored from the leveldb 1.20 sources bundled by classic-level
 * (table/format.{h,cc}, table/table.cc, table/table_builder.cc, table/block.cc):
 *
 *   [data block 0] ... [data block n-1] [filter block] [metaindex block] [index block] [footer]
 *
 *   block:  contents, then a 5-byte trailer: type (0 none, 1 snappy) and the masked crc32c
 *           of contents + type byte. The crc covers the *stored* (compressed) bytes.
 *   footer: 48 bytes: metaindex and index BlockHandles (varint64 offset, varint64 size
 *           each), zero padding to 40 bytes, then the magic 0xdb4775248b80fb57 (fixed64 LE).
 *   index:  one entry per data block, value = its BlockHandle (in file order).
 *   meta:   "filter.<policy name>" -> the filter block's BlockHandle.
 *
 * Every byte of a valid table is covered by some check, so that flipping any one byte is
 * caught: block contents and trailers by their crc, the magic by comparison, the handles
 * and padding by requiring the footer to be exactly what TableBuilder writes (canonical
 * varints, zero padding; LevelDB itself skips the padding), and the block positions by
 * requiring the blocks to tile the file with no gap or overlap.
 */

export const FOOTER_SIZE = 48; // Footer::kEncodedLength = 2 * 20 + 8
export const BLOCK_TRAILER_SIZE = 5; // kBlockTrailerSize
const HANDLES_SIZE = 40; // 2 * BlockHandle::kMaxEncodedLength
const MAGIC_LO = 0x8b80fb57; // kTableMagicNumber & 0xffffffff
const MAGIC_HI = 0xdb477524; // kTableMagicNumber >> 32
const FILTER_PREFIX = 'filter.';

export const BlockType = { None: 0, Snappy: 1 } as const;

export interface BlockHandle {
  offset: number;
  size: number;
}

export interface TableBlock extends BlockHandle {
  kind: 'data' | 'filter' | 'metaindex' | 'index';
  /** The trailer's compression type byte (BlockType). */
  type: number;
}

export interface BlockEntry {
  key: Buffer;
  value: Buffer;
}

/** Adds file and position to every error; `base` comes from the caller (scope, file). */
class Reporter {
  constructor(
    private readonly name: string,
    private readonly base: Record<string, unknown>,
  ) {}

  corrupt(message: string, extra: Record<string, unknown> = {}): CairnError {
    return new CairnError('CORRUPT', `table ${this.name}: ${message}`, { details: { ...this.base, ...extra } });
  }
}

/** Decodes a varint of at most `maxBytes` bytes (5 for varint32, 10 for varint64). Values
 * past 2^53 are rejected: no offset or size in a table we can hold in memory gets there. */
function getVarint(buf: Uint8Array, pos: number, limit: number, maxBytes: number, r: Reporter, what: string): [number, number] {
  let result = 0;
  for (let i = 0; i < maxBytes; i++) {
    if (pos + i >= limit) throw r.corrupt(`${what}: varint runs past its end`, { offset: pos });
    const byte = buf[pos + i]!;
    result += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) {
      if (!Number.isSafeInteger(result) || (maxBytes === 5 && result > 0xffffffff)) throw r.corrupt(`${what}: varint too large`, { offset: pos });
      return [result, pos + i + 1];
    }
  }
  throw r.corrupt(`${what}: varint longer than ${maxBytes} bytes`, { offset: pos });
}

function putVarint(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function decodeHandle(buf: Uint8Array, pos: number, limit: number, r: Reporter, what: string): [BlockHandle, number] {
  const [offset, p1] = getVarint(buf, pos, limit, 10, r, what);
  const [size, p2] = getVarint(buf, p1, limit, 10, r, what);
  return [{ offset, size }, p2];
}

/**
 * Parses the entries of an (uncompressed) block, as Block::Iter does: each entry is
 * varint32 shared, varint32 non_shared, varint32 value_length, key delta, value; then the
 * restart array (uint32 each) and its length (uint32). Entries must end exactly where the
 * restart array starts, and every restart point must be an entry that shares no key bytes.
 */
export function parseBlock(contents: Uint8Array, name = 'block', details: Record<string, unknown> = {}): BlockEntry[] {
  const r = new Reporter(name, details);
  const buf = Buffer.from(contents.buffer, contents.byteOffset, contents.length);
  if (buf.length < 4) throw r.corrupt('block shorter than its restart count');
  const numRestarts = buf.readUInt32LE(buf.length - 4);
  if (numRestarts > (buf.length - 4) / 4) throw r.corrupt(`block too short for ${numRestarts} restarts`);
  const restartsAt = buf.length - (1 + numRestarts) * 4;

  const entries: BlockEntry[] = [];
  const fullKeyStarts = new Set<number>(); // entries with shared == 0
  let prevKey = Buffer.alloc(0);
  let p = 0;
  while (p < restartsAt) {
    const start = p;
    let shared: number, nonShared: number, valueLength: number;
    [shared, p] = getVarint(buf, p, restartsAt, 5, r, 'block entry');
    [nonShared, p] = getVarint(buf, p, restartsAt, 5, r, 'block entry');
    [valueLength, p] = getVarint(buf, p, restartsAt, 5, r, 'block entry');
    if (shared > prevKey.length) throw r.corrupt(`entry shares ${shared} bytes of a ${prevKey.length}-byte key`, { entry: start });
    if (nonShared + valueLength > restartsAt - p) throw r.corrupt('entry runs into the restart array', { entry: start });
    const key = Buffer.concat([prevKey.subarray(0, shared), buf.subarray(p, p + nonShared)]);
    entries.push({ key, value: buf.subarray(p + nonShared, p + nonShared + valueLength) });
    if (shared === 0) fullKeyStarts.add(start);
    prevKey = key;
    p += nonShared + valueLength;
  }
  for (let i = 0; i < numRestarts; i++) {
    const restart = buf.readUInt32LE(restartsAt + 4 * i);
    // An empty block still records restart 0 (BlockBuilder starts with it).
    if (!(entries.length === 0 && restart === 0) && !fullKeyStarts.has(restart)) {
      throw r.corrupt(`restart point ${restart} is not the start of a full key`);
    }
  }
  return entries;
}

/** Checks a block's bounds, type and crc; returns its stored contents and type. */
function readBlock(bytes: Buffer, handle: BlockHandle, kind: TableBlock['kind'], limit: number, r: Reporter): TableBlock & { contents: Buffer } {
  const where = { block: kind, offset: handle.offset, size: handle.size };
  if (handle.offset + handle.size + BLOCK_TRAILER_SIZE > limit) throw r.corrupt(`${kind} block extends past the blocks area`, where);
  const typeAt = handle.offset + handle.size;
  const type = bytes[typeAt]!;
  const expected = unmaskCrc(bytes.readUInt32LE(typeAt + 1));
  // The crc covers the contents and the type byte.
  if (crc32cExtend(0, bytes, handle.offset, typeAt + 1) !== expected) throw r.corrupt(`${kind} block checksum mismatch`, where);
  if (type !== BlockType.None && type !== BlockType.Snappy) throw r.corrupt(`${kind} block has unknown type ${type}`, where);
  return { ...handle, kind, type, contents: bytes.subarray(handle.offset, typeAt) };
}

/** A block's entries, decompressed first when stored with snappy. */
function blockEntries(block: TableBlock & { contents: Buffer }, name: string, base: Record<string, unknown>): BlockEntry[] {
  const details = { ...base, block: block.kind, offset: block.offset };
  const raw = block.type === BlockType.Snappy ? snappyUncompress(block.contents, details) : block.contents;
  return parseBlock(raw, name, details);
}

/**
 * Verifies a table held in memory and returns its blocks in file order (tests use this to
 * see how blocks were stored). checkTableBytes is the same without the result.
 */
export function readTableLayout(bytes: Buffer, name: string, details: Record<string, unknown> = {}): TableBlock[] {
  const base = { scope: LOCAL_STATE, file: name, ...details };
  const r = new Reporter(name, base);

  // Footer. A truncated table fails here: its last 48 bytes are not a footer.
  if (bytes.length < FOOTER_SIZE) throw r.corrupt(`file of ${bytes.length} bytes is too short to be a table`, { size: bytes.length });
  const footerAt = bytes.length - FOOTER_SIZE;
  if (bytes.readUInt32LE(footerAt + HANDLES_SIZE) !== MAGIC_LO || bytes.readUInt32LE(footerAt + HANDLES_SIZE + 4) !== MAGIC_HI) {
    throw r.corrupt('bad magic number (not a table, or truncated)', { size: bytes.length });
  }
  const [metaHandle, p] = decodeHandle(bytes, footerAt, footerAt + HANDLES_SIZE, r, 'footer');
  const [indexHandle] = decodeHandle(bytes, p, footerAt + HANDLES_SIZE, r, 'footer');
  // LevelDB skips whatever follows the handles; we require TableBuilder's exact bytes, so
  // that no footer byte is left unchecked (a non-canonical varint or a stray padding byte
  // would otherwise decode to the same handles).
  const canonical: number[] = [];
  for (const h of [metaHandle, indexHandle]) {
    putVarint(canonical, h.offset);
    putVarint(canonical, h.size);
  }
  for (let i = 0; i < HANDLES_SIZE; i++) {
    if (bytes[footerAt + i] !== (canonical[i] ?? 0)) throw r.corrupt('footer handles or padding are not as TableBuilder writes them', { offset: footerAt + i });
  }

  const index = readBlock(bytes, indexHandle, 'index', footerAt, r);
  const meta = readBlock(bytes, metaHandle, 'metaindex', footerAt, r);
  const data: BlockHandle[] = [];
  for (const e of blockEntries(index, name, base)) {
    // Table::BlockReader allows bytes after the handle ("future features"); so do we.
    data.push(decodeHandle(e.value, 0, e.value.length, r, 'index entry')[0]);
  }
  const filters: BlockHandle[] = [];
  for (const e of blockEntries(meta, name, base)) {
    const key = e.key.toString('latin1');
    // LevelDB 1.20 writes no other meta blocks; an unknown one would be bytes we cannot place.
    if (!key.startsWith(FILTER_PREFIX)) throw r.corrupt(`unknown meta block ${JSON.stringify(key)}`);
    filters.push(decodeHandle(e.value, 0, e.value.length, r, 'metaindex entry')[0]);
  }

  // Tiling, checked before the data crcs so that a garbled layout is reported as such:
  // data blocks in index order from offset 0, then the meta blocks in file order.
  type Placed = BlockHandle & { kind: TableBlock['kind'] };
  const metaBlocks: Placed[] = [
    ...filters.map((h): Placed => ({ ...h, kind: 'filter' })),
    { ...metaHandle, kind: 'metaindex' },
    { ...indexHandle, kind: 'index' },
  ];
  metaBlocks.sort((a, b) => a.offset - b.offset);
  const order: Placed[] = [...data.map((h): Placed => ({ ...h, kind: 'data' })), ...metaBlocks];
  let cursor = 0;
  for (const b of order) {
    if (b.offset !== cursor) throw r.corrupt(`${b.kind} block at ${b.offset}, expected ${cursor} (gap or overlap)`, { block: b.kind, offset: b.offset });
    cursor += b.size + BLOCK_TRAILER_SIZE;
    if (cursor > footerAt) throw r.corrupt(`${b.kind} block extends past the blocks area`, { block: b.kind, offset: b.offset, size: b.size });
  }
  if (cursor !== footerAt) throw r.corrupt(`blocks end at ${cursor}, footer starts at ${footerAt}`);

  const layout: TableBlock[] = [];
  for (const b of order) {
    const block = b.kind === 'index' ? index : b.kind === 'metaindex' ? meta : readBlock(bytes, b, b.kind, footerAt, r);
    layout.push({ offset: block.offset, size: block.size, kind: block.kind, type: block.type });
  }
  return layout;
}

/** Verifies a table already in memory (downloaded files, tests); `name` is for messages,
 * `details` is merged into every error's details (default scope LOCAL_STATE). */
export function checkTableBytes(bytes: Buffer, name: string, details: Record<string, unknown> = {}): void {
  readTableLayout(bytes, name, details);
}

/** Reads a LevelDB table file once, verifies its structure and every block checksum, and
 * returns its sha256 and size. Tables are ~2 MiB (LevelDB's target file size), so one read
 * into memory is simpler and no slower than streaming, and gives hash and check one pass
 * over the disk. */
export async function checkTableFile(path: string): Promise<{ sha256: string; size: number }> {
  const details = { scope: LOCAL_STATE, file: path };
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    // A table the state references but cannot find is damage; other I/O failures
    // (EMFILE, EIO) say nothing about the bytes and must not be mistaken for corruption.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CairnError('CORRUPT', `table ${path} is missing`, { cause: err, details });
    throw new CairnError('STATE_UNAVAILABLE', `cannot read table ${path}: ${(err as Error).message}`, { cause: err, details });
  }
  checkTableBytes(bytes, path, { scope: LOCAL_STATE });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { sha256, size: bytes.length };
}
