import { CairnError } from '../core/errors.js';

/**
 * A Snappy *decompressor*, enough to read LevelDB blocks stored with type 1 (the index and
 * metaindex blocks table-check.ts must parse). Mirrors SnappyDecompressor and
 * SnappyArrayWriter in the snappy sources bundled by classic-level
 * (node_modules/classic-level/deps/snappy/snappy/snappy.cc):
 *
 *   varint32 uncompressed length, then elements, each starting with a tag byte whose low
 *   two bits give the kind:
 *     00 literal   length-1 in tag>>2 when < 60; 60..63 mean 1..4 little-endian bytes
 *                  follow holding length-1; then the literal bytes
 *     01 copy      length 4 + ((tag>>2) & 7), offset ((tag>>5) << 8) | next byte
 *     10 copy      length 1 + (tag>>2), offset in the next 2 bytes (little-endian)
 *     11 copy      length 1 + (tag>>2), offset in the next 4 bytes (little-endian)
 *   A copy repeats `length` bytes starting `offset` bytes back in the output; it may
 *   overlap what it writes (offset < length repeats a pattern).
 *
 * Like snappy's own reader, anything malformed is an error rather than a best effort:
 * input ending inside an element, a copy reaching before the start of the output (or with
 * offset 0), output overrunning or falling short of the declared length. Every read is
 * bounds checked, so damaged input cannot make us read or write out of range.
 */

/** The largest output one input byte can produce: a 3-byte copy (2-byte offset) writes at
 * most 64 bytes, i.e. 21.3 per byte; other elements expand less. A declared length above
 * this bound cannot be honest, and rejecting it up front avoids a huge allocation. */
const MAX_EXPANSION = 22;

function corrupt(message: string, details: Record<string, unknown>, at: number): CairnError {
  return new CairnError('CORRUPT', `snappy: ${message}`, { details: { ...details, snappyOffset: at } });
}

/**
 * Reads the uncompressed length preamble: a varint32 of 1..5 bytes. Returns the length and
 * the offset of the first element. Mirrors ReadUncompressedLength (rejects bits beyond 32).
 */
export function snappyUncompressedLength(input: Uint8Array, details: Record<string, unknown> = {}): { length: number; next: number } {
  let result = 0;
  for (let i = 0, shift = 0; shift < 32; i++, shift += 7) {
    if (i >= input.length) throw corrupt('input ends inside the length preamble', details, i);
    const byte = input[i]!;
    const val = byte & 0x7f;
    // In the fifth byte only 4 bits fit in 32; snappy rejects the rest.
    if (shift === 28 && val > 0x0f) throw corrupt('uncompressed length exceeds 32 bits', details, i);
    result += val * 2 ** shift;
    if (byte < 0x80) return { length: result, next: i + 1 };
  }
  throw corrupt('uncompressed length preamble longer than 5 bytes', details, 5);
}

/** Decompresses a whole Snappy buffer; throws CairnError('CORRUPT') on malformed input.
 * `details` is added to the error (e.g. which file and block the input came from). */
export function snappyUncompress(input: Uint8Array, details: Record<string, unknown> = {}): Buffer {
  const { length, next } = snappyUncompressedLength(input, details);
  if (length > (input.length - next) * MAX_EXPANSION) {
    throw corrupt(`declared length ${length} is impossible for ${input.length} input bytes`, details, 0);
  }
  const out = Buffer.allocUnsafe(length);
  let op = 0; // bytes produced
  let ip = next;
  const end = input.length;

  while (ip < end) {
    const tagAt = ip;
    const tag = input[ip++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let len = (tag >>> 2) + 1;
      if (len > 60) {
        // 61..64: the length-1 is in the next 1..4 bytes.
        const bytes = len - 60;
        if (ip + bytes > end) throw corrupt('input ends inside a literal length', details, tagAt);
        len = 0;
        for (let k = bytes - 1; k >= 0; k--) len = len * 256 + input[ip + k]!;
        len += 1;
        ip += bytes;
      }
      if (len > end - ip) throw corrupt('literal runs past the end of the input', details, tagAt);
      if (len > length - op) throw corrupt('literal overruns the declared length', details, tagAt);
      out.set(input.subarray(ip, ip + len), op);
      ip += len;
      op += len;
      continue;
    }

    let len: number;
    let offset: number;
    if (kind === 1) {
      if (ip + 1 > end) throw corrupt('input ends inside a copy', details, tagAt);
      len = 4 + ((tag >>> 2) & 7);
      offset = ((tag >>> 5) << 8) | input[ip]!;
      ip += 1;
    } else if (kind === 2) {
      if (ip + 2 > end) throw corrupt('input ends inside a copy', details, tagAt);
      len = (tag >>> 2) + 1;
      offset = input[ip]! | (input[ip + 1]! << 8);
      ip += 2;
    } else {
      if (ip + 4 > end) throw corrupt('input ends inside a copy', details, tagAt);
      len = (tag >>> 2) + 1;
      // >>> 0: the top byte may set bit 31.
      offset = (input[ip]! | (input[ip + 1]! << 8) | (input[ip + 2]! << 16) | (input[ip + 3]! << 24)) >>> 0;
      ip += 4;
    }
    // As SnappyArrayWriter::AppendFromSelf: offset 0 would loop forever on itself.
    if (offset === 0 || offset > op) throw corrupt(`copy offset ${offset} outside the ${op} bytes produced`, details, tagAt);
    if (len > length - op) throw corrupt('copy overruns the declared length', details, tagAt);
    if (offset >= len) {
      out.copyWithin(op, op - offset, op - offset + len);
    } else {
      // Overlapping: byte by byte, so the copy re-reads what it just wrote (copyWithin
      // has memmove semantics and would not repeat the pattern).
      for (let k = 0; k < len; k++) out[op + k] = out[op - offset + k]!;
    }
    op += len;
  }
  if (op !== length) throw corrupt(`produced ${op} bytes, declared ${length}`, details, ip);
  return out;
}
