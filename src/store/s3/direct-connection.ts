import type { FileHandle } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { DirectGetOptions, DirectGetResult, DirectGetSink, Origin } from './direct-get.js';
import type { Segment, SegmentPool } from './segment-pool.js';

/**
 * The socket side of the direct download path (direct-get.ts): one kept-alive connection per
 * exchange, the response head parsed by hand (the few headers the path needs), and the body
 * written from the socket's reused read buffer into pooled segments at its file offsets.
 */

const READ_BUFFER_BYTES = 256 * 1024;

/** Thrown when a reused socket closed before any byte of the answer; the cause is the socket's error. */
export class StaleConnection extends Error {
  constructor(override readonly cause: unknown) {
    super('connection closed before the response');
  }
}

export function timeoutError(message: string): Error {
  const e = new Error(message);
  e.name = 'TimeoutError';
  return e;
}

/** One kept-alive socket; one exchange at a time. */
export class Connection {
  private onBytes: ((chunk: Buffer) => void) | undefined;
  private onEnd: ((err: unknown) => void) | undefined;
  private used = false;

  private constructor(private readonly socket: net.Socket) {}

  static open(origin: Origin, options: DirectGetOptions): Promise<Connection> {
    return new Promise((resolve, reject) => {
      let conn: Connection | undefined;
      const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
      const deliver = (chunk: Buffer) => conn?.onBytes?.(chunk);
      // Plain TCP reads into one reused buffer; TLS hands out a fresh chunk per read.
      const socket = origin.tls
        ? tls.connect({ host: origin.host, port: origin.port, servername: origin.host })
        : net.connect({ host: origin.host, port: origin.port, onread: { buffer: readBuffer, callback: (n: number, buf: Uint8Array) => (deliver(Buffer.from(buf.buffer, buf.byteOffset, n)), true) } });
      conn = new Connection(socket);
      if (origin.tls) socket.on('data', deliver);
      socket.setNoDelay(true);
      const timer = setTimeout(() => socket.destroy(timeoutError(`connect to ${origin.host}:${origin.port} timed out after ${options.connectTimeoutMs} ms`)), options.connectTimeoutMs);
      const failed = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', failed);
      socket.once(origin.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', failed);
        socket.setTimeout(options.requestTimeoutMs, () => socket.destroy(timeoutError(`socket silent for ${options.requestTimeoutMs} ms`)));
        socket.on('error', (err) => conn!.onEnd?.(err));
        socket.on('close', () => conn!.onEnd?.(new Error('socket hang up')));
        resolve(conn);
      });
    });
  }

  get alive(): boolean {
    return !this.socket.destroyed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Sends the request and streams a success body into the sink. Resolves with the reply (or
   * undefined for any other answer) and whether the socket may serve another request.
   */
  exchange(head: string, signal: AbortSignal, sink: DirectGetSink, segments: SegmentPool): Promise<{ reply: DirectGetResult | undefined; reusable: boolean }> {
    const reused = this.used;
    this.used = true;
    return new Promise((resolve, reject) => {
      const body = new BodyWriter(sink, segments, () => this.socket.pause(), () => this.socket.resume());
      let header: Buffer | undefined = Buffer.alloc(0);
      let reply: DirectGetResult | undefined;
      let remaining = 0;
      let keepAlive = true;
      let settled = false;
      const finish = (err: unknown, outcome?: { reply: DirectGetResult | undefined; reusable: boolean }) => {
        if (settled) return;
        settled = true;
        this.onBytes = undefined;
        this.onEnd = undefined;
        signal.removeEventListener('abort', onAbort);
        if (err !== undefined) this.socket.destroy();
        // Segment writes may still be in flight; the file handle must outlive them.
        body.settle().then(
          () => (err !== undefined ? reject(err) : resolve(outcome!)),
          (writeErr: unknown) => reject(err ?? writeErr),
        );
      };
      const onAbort = () => finish(signal.reason ?? new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      // Closed before a byte of the answer on a socket that served before: stale, unless it
      // was our own timeout (a server that does not answer is not retried here for free).
      const stale = (err: unknown) => reused && header !== undefined && header.length === 0 && (err as Error | undefined)?.name !== 'TimeoutError';
      this.onEnd = (err) => finish(stale(err) ? new StaleConnection(err) : err);
      this.onBytes = (chunk) => {
        if (header !== undefined) {
          header = header.length === 0 ? Buffer.from(chunk) : Buffer.concat([header, chunk]);
          const end = header.indexOf('\r\n\r\n');
          if (end < 0) {
            if (header.length > 64 * 1024) finish(new Error('response header too large'));
            return;
          }
          const parsed = parseHead(header.subarray(0, end).toString('latin1'));
          const rest = header.subarray(end + 4);
          header = undefined;
          if (!parsed || (parsed.status !== 200 && parsed.status !== 206)) return finish(undefined, { reply: undefined, reusable: false });
          keepAlive = parsed.keepAlive;
          remaining = parsed.contentLength;
          reply = { status: parsed.status, etag: parsed.etag, contentRange: parsed.contentRange, contentLength: parsed.contentLength, written: 0 };
          chunk = rest;
        }
        if (chunk.length > remaining) return finish(new Error(`response body longer than its Content-Length (${reply!.contentLength})`));
        if (chunk.length > 0) body.write(chunk);
        remaining -= chunk.length;
        if (remaining === 0) {
          reply!.written = reply!.contentLength;
          this.onBytes = undefined;
          finish(undefined, { reply, reusable: keepAlive });
        }
      };
      this.socket.write(head);
    });
  }
}

/**
 * Copies body bytes into pooled segments (the socket's buffer is reused after each read) and
 * writes each full segment at its offset. When the pool is empty the socket is paused, so
 * memory stays at the pool's size whatever the number of downloads in flight.
 */
export class BodyWriter {
  private segment: Segment | undefined;
  private used = 0;
  private position: number;
  private readonly pending: Array<Promise<void>> = [];
  private backlog: Buffer[] = [];
  private waiting = false;
  /** Settles when the segment waited for has arrived and the backlog is copied. */
  private segmentArrives: Promise<void> | undefined;
  private error: unknown;
  private ended = false;

  constructor(
    private readonly sink: DirectGetSink,
    private readonly pool: SegmentPool,
    private readonly pause: () => void,
    private readonly resume: () => void,
  ) {
    this.position = sink.offset;
  }

  write(chunk: Buffer): void {
    this.sink.hash?.update(chunk);
    this.sink.report(chunk.length);
    // report() may abort this very exchange (an onBytes that aborts): settle() has then run
    // and released everything; a segment taken now would never return to the pool.
    if (this.ended) return;
    if (this.waiting) {
      this.backlog.push(Buffer.from(chunk));
      return;
    }
    this.copy(chunk);
  }

  /** Flushes the last segment and waits for every write; rejects with the first write error. */
  async settle(): Promise<void> {
    this.ended = true;
    while (this.segmentArrives) await this.segmentArrives;
    this.flush();
    await Promise.all(this.pending);
    if (this.error !== undefined) throw this.error;
  }

  private copy(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (!this.segment) {
        const seg = this.pool.tryAcquire();
        if (!seg) {
          // Keep what is left of this read (the socket's buffer is about to be reused) and
          // stop reading until a segment comes back.
          this.backlog.push(Buffer.from(chunk.subarray(off)));
          this.waitForSegment();
          return;
        }
        this.segment = seg;
        this.used = 0;
      }
      const n = chunk.copy(this.segment.buffer, this.used, off);
      this.used += n;
      off += n;
      if (this.used === this.segment.buffer.length) this.flush();
    }
  }

  private waitForSegment(): void {
    this.waiting = true;
    this.pause();
    this.segmentArrives = this.pool.acquire().then((seg) => {
      this.segmentArrives = undefined; // copying the backlog may start another wait
      this.segment = seg;
      this.used = 0;
      this.waiting = false;
      const backlog = this.backlog;
      this.backlog = [];
      for (const b of backlog) {
        if (this.waiting) this.backlog.push(b);
        else this.copy(b);
      }
      // Even when the body has ended: the socket goes back to the idle pool (settle() waits
      // for this), and a paused one would never read the next answer.
      if (!this.waiting) this.resume();
    });
  }

  private flush(): void {
    const seg = this.segment;
    if (!seg) return;
    this.segment = undefined;
    if (this.used === 0 || this.error !== undefined) {
      this.pool.release(seg);
      return;
    }
    const length = this.used;
    const position = this.position;
    this.position += length;
    this.pending.push(
      writeFully(this.sink.fh, seg.buffer, length, position).then(
        () => this.pool.release(seg),
        (err: unknown) => {
          this.error ??= err;
          this.pool.release(seg);
        },
      ),
    );
  }
}

async function writeFully(fh: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  let off = 0;
  while (off < length) off += (await fh.write(buffer, off, length - off, position + off)).bytesWritten;
}

interface ParsedHead {
  status: number;
  contentLength: number;
  etag: string | undefined;
  contentRange: string | undefined;
  keepAlive: boolean;
}

/** The status line and the few headers this path needs; undefined when it cannot stream the body. */
function parseHead(text: string): ParsedHead | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const length = headers.get('content-length');
  if (length === undefined || !/^\d+$/.test(length) || headers.has('transfer-encoding')) return undefined;
  const connection = headers.get('connection')?.toLowerCase();
  return {
    status: Number(m[2]),
    contentLength: Number(length),
    etag: headers.get('etag'),
    contentRange: headers.get('content-range'),
    keepAlive: m[1] === '1' ? connection !== 'close' : connection === 'keep-alive',
  };
}
