import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RetryInfo } from '../../src/store/request-retry.js';
import type { S3ObjectStoreOptions } from '../../src/store/s3/options.js';
import { S3ObjectStore } from '../../src/store/s3/store.js';
import { tempDir } from '../helpers/cli.js';
import { expectCode } from '../helpers/fixtures.js';
import { s3TestConfig, uniqueS3Prefix } from '../helpers/s3.js';
import { collect } from '../../src/testing/store-conformance.js';

/**
 * The direct download path (src/store/s3/direct-get.ts) against the real MinIO, through a
 * TCP proxy written here that relays bytes unchanged (SigV4 still verifies) unless told to
 * misbehave for a request: cut the connection or go silent after N body bytes, hold a request
 * while the test acts, or drop a kept-alive connection when it is used again. Every outcome
 * is a file compared with what was uploaded, or an error code.
 */
const MiB = 1024 * 1024;
const PREFIX = uniqueS3Prefix(import.meta.url);
const FAST_BACKOFF = { baseDelayMs: 1, maxDelayMs: 5 };

// ---------------------------------------------------------------------------------------
// The wire proxy
// ---------------------------------------------------------------------------------------

interface SeenRequest {
  method: string;
  path: string;
  range: string | undefined;
  /** Sent by the AWS SDK (it sets a User-Agent; the direct path does not). */
  sdk: boolean;
  /** The connection had carried a request before. */
  reused: boolean;
}

interface Fault {
  /** Which request it applies to; default: the next GET of the direct path. */
  match?: (r: SeenRequest) => boolean;
  /** Called before the request is forwarded; the request waits for it. */
  before?: () => Promise<void>;
  /** Relay the answer's head and this many body bytes, then `then`. */
  afterBodyBytes?: number;
  /**
   * 'cut': close the connection; 'stall': keep it open and send nothing more; 'hold': keep
   * the rest of the answer until `releaseHeld()`.
   */
  then?: 'cut' | 'stall' | 'hold';
}

interface Conn {
  client: Socket;
  upstream: Socket;
  served: number;
  /** Requests forwarded whose answer has not started yet, in order. */
  pending: Array<{ method: string; fault: Fault | undefined }>;
  reqBuf: Buffer;
  reqBodyLeft: number;
  holding: boolean;
  respBuf: Buffer;
  /** Body bytes left of the answer being relayed; undefined between answers. */
  bodyLeft: number | undefined;
  relayed: number;
  fault: Fault | undefined;
  passthrough: boolean;
  silenced: boolean;
  /** Upstream bytes kept back by a 'hold' fault, or undefined. */
  held: Buffer[] | undefined;
  /** Behaves as if the server had closed it while idle: the next request is dropped unanswered. */
  stale: boolean;
  dead: boolean;
}

const EMPTY = Buffer.alloc(0);
const directGet = (r: SeenRequest) => r.method === 'GET' && !r.sdk;

class WireProxy {
  readonly requests: SeenRequest[] = [];
  /** Connections accepted so far. */
  accepted = 0;
  /** Requests dropped unanswered on a stale connection. */
  dropped = 0;
  private readonly conns = new Set<Conn>();
  private faults: Fault[] = [];
  private readonly onEmpty: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {}

  static async start(upstream: string): Promise<WireProxy> {
    const url = new URL(upstream);
    const server = createServer();
    const proxy = new WireProxy(server, url.hostname, Number(url.port || 80));
    server.on('connection', (socket) => proxy.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Misbehave for the next request `fault.match` accepts (once). */
  inject(fault: Fault): void {
    this.faults.push(fault);
  }

  /** Faults injected and not used yet. */
  get unusedFaults(): number {
    return this.faults.length;
  }

  get openConnections(): number {
    return this.conns.size;
  }

  directGets(): SeenRequest[] {
    return this.requests.filter(directGet);
  }

  /** Closes (server side) every connection with no request in flight; returns how many. */
  closeIdle(): number {
    let n = 0;
    for (const c of this.conns) {
      if (!this.idle(c)) continue;
      c.dead = true;
      c.client.destroy();
      c.upstream.destroy();
      n++;
    }
    return n;
  }

  /**
   * Every idle connection drops its next request unanswered: the server closed it while idle
   * and the client had not noticed yet (the race every keep-alive pool has). Returns how many.
   */
  staleIdle(): number {
    let n = 0;
    for (const c of this.conns) {
      if (!this.idle(c)) continue;
      c.stale = true;
      n++;
    }
    return n;
  }

  /** Resolves once no client connection is open (an event, not a poll). */
  whenAllClosed(): Promise<void> {
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.onEmpty.push(resolve));
  }

  async close(): Promise<void> {
    for (const c of this.conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private idle(c: Conn): boolean {
    return !c.dead && !c.stale && c.pending.length === 0 && c.bodyLeft === undefined && !c.holding && c.reqBuf.length === 0;
  }

  private accept(client: Socket): void {
    this.accepted++;
    const upstream = connect({ host: this.upstreamHost, port: this.upstreamPort });
    const c: Conn = {
      client,
      upstream,
      served: 0,
      pending: [],
      reqBuf: EMPTY,
      reqBodyLeft: 0,
      holding: false,
      respBuf: EMPTY,
      bodyLeft: undefined,
      relayed: 0,
      fault: undefined,
      passthrough: false,
      silenced: false,
      held: undefined,
      stale: false,
      dead: false,
    };
    this.conns.add(c);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => {
      c.dead = true;
      upstream.destroy();
      this.conns.delete(c);
      if (this.conns.size === 0) for (const wake of this.onEmpty.splice(0)) wake();
    });
    // A stalled connection stays open on the client side after upstream is gone.
    upstream.on('close', () => c.silenced || client.end());
    client.on('data', (d: Buffer) => this.fromClient(c, d));
    upstream.on('data', (d: Buffer) => this.fromUpstream(c, d));
  }

  private fromClient(c: Conn, data: Buffer): void {
    if (c.dead) return;
    if (c.stale) {
      this.dropped++;
      c.dead = true;
      c.client.destroy();
      c.upstream.destroy();
      return;
    }
    c.reqBuf = c.reqBuf.length === 0 ? data : Buffer.concat([c.reqBuf, data]);
    this.pump(c);
  }

  private pump(c: Conn): void {
    while (!c.holding && !c.dead && c.reqBuf.length > 0) {
      if (c.reqBodyLeft > 0) {
        const n = Math.min(c.reqBodyLeft, c.reqBuf.length);
        c.upstream.write(c.reqBuf.subarray(0, n));
        c.reqBodyLeft -= n;
        c.reqBuf = c.reqBuf.subarray(n);
        continue;
      }
      const end = c.reqBuf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = c.reqBuf.subarray(0, end + 4);
      c.reqBuf = c.reqBuf.subarray(end + 4);
      const [requestLine = '', ...lines] = head.toString('latin1').split('\r\n');
      const [method = '', path = ''] = requestLine.split(' ');
      const headers = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const seen: SeenRequest = { method, path, range: headers.get('range'), sdk: headers.has('user-agent'), reused: c.served > 0 };
      c.served++;
      this.requests.push(seen);
      c.reqBodyLeft = Number(headers.get('content-length') ?? 0);
      const i = this.faults.findIndex((f) => (f.match ?? directGet)(seen));
      const fault = i >= 0 ? this.faults.splice(i, 1)[0] : undefined;
      c.pending.push({ method, fault });
      if (fault?.before) {
        c.holding = true;
        c.client.pause();
        void fault.before().then(() => {
          c.holding = false;
          if (c.dead) return;
          c.upstream.write(head);
          c.client.resume();
          this.pump(c);
        });
        return;
      }
      c.upstream.write(head);
    }
  }

  /** Relays what 'hold' faults kept back, and everything after it. */
  releaseHeld(): number {
    let n = 0;
    for (const c of this.conns) {
      const held = c.held;
      if (!held) continue;
      c.held = undefined;
      n++;
      for (const data of held) this.fromUpstream(c, data);
    }
    return n;
  }

  private fromUpstream(c: Conn, data: Buffer): void {
    if (c.dead || c.silenced) return;
    if (c.held) {
      c.held.push(data);
      return;
    }
    if (c.passthrough) {
      c.client.write(data);
      return;
    }
    let buf = c.respBuf.length === 0 ? data : Buffer.concat([c.respBuf, data]);
    c.respBuf = EMPTY;
    const out: Buffer[] = [];
    const flush = () => {
      if (out.length > 0) c.client.write(Buffer.concat(out));
      out.length = 0;
    };
    while (buf.length > 0) {
      if (c.bodyLeft === undefined) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          c.respBuf = buf;
          break;
        }
        const head = buf.subarray(0, end + 4);
        buf = buf.subarray(end + 4);
        out.push(head);
        const text = head.toString('latin1');
        const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(text)?.[1] ?? 0);
        if (status >= 100 && status < 200) continue;
        const req = c.pending.shift();
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(text);
        if (req?.method === 'HEAD' || status === 204 || status === 304) c.bodyLeft = 0;
        else if (length) c.bodyLeft = Number(length[1]);
        else {
          // No framing this proxy follows (chunked, or until close): relay the rest as is.
          c.passthrough = true;
          out.push(buf);
          break;
        }
        c.relayed = 0;
        c.fault = req?.fault;
        if (c.bodyLeft === 0) {
          c.bodyLeft = undefined;
          c.fault = undefined;
          continue;
        }
        if (buf.length === 0) break;
      }
      const n = Math.min(c.bodyLeft!, buf.length);
      const fault = c.fault;
      if (fault?.then && c.relayed + n >= (fault.afterBodyBytes ?? 0)) {
        const take = (fault.afterBodyBytes ?? 0) - c.relayed;
        out.push(buf.subarray(0, take));
        flush();
        if (fault.then === 'hold') {
          // Relayed as usual from here once released.
          c.fault = undefined;
          c.relayed += take;
          c.bodyLeft! -= take;
          c.held = [buf.subarray(take)];
          return;
        }
        if (fault.then === 'cut') {
          c.dead = true;
          c.upstream.destroy();
          c.client.end();
        } else {
          c.silenced = true;
          c.upstream.destroy();
        }
        return;
      }
      out.push(buf.subarray(0, n));
      c.relayed += n;
      c.bodyLeft! -= n;
      buf = buf.subarray(n);
      if (c.bodyLeft === 0) {
        c.bodyLeft = undefined;
        c.fault = undefined;
      }
    }
    flush();
  }
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

interface Uploaded {
  key: string;
  size: number;
  sha256: string;
}

let uploader: S3ObjectStore;
let scratch: string;
const proxies: WireProxy[] = [];
const stores: S3ObjectStore[] = [];
let fileNo = 0;

function sha(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function upload(key: string, size: number): Promise<Uploaded> {
  const body = randomBytes(size);
  await uploader.put(key, body);
  return { key, size, sha256: sha(body) };
}

async function startProxy(): Promise<WireProxy> {
  const proxy = await WireProxy.start(s3TestConfig().endpoint);
  proxies.push(proxy);
  return proxy;
}

/** A store under test that reaches MinIO through `proxy`, counting retries. */
function storeVia(proxy: WireProxy, options: Partial<S3ObjectStoreOptions> = {}): { store: S3ObjectStore; retries: RetryInfo[] } {
  const retries: RetryInfo[] = [];
  const store = new S3ObjectStore({
    bucket: s3TestConfig().bucket,
    prefix: PREFIX,
    endpoint: proxy.endpoint,
    // A 2-segment pool: concurrent bodies must wait for segments (sockets pause and resume).
    downloadBufferBytes: 1,
    backoff: FAST_BACKOFF,
    hooks: { onRetry: (r) => retries.push(r) },
    ...options,
  });
  stores.push(store);
  return { store, retries };
}

function target(): string {
  return join(scratch, `out-${fileNo++}`);
}

/** The file holds exactly the uploaded bytes. */
async function expectIntact(path: string, object: Uploaded): Promise<void> {
  const bytes = await readFile(path);
  expect(bytes.length, object.key).toBe(object.size);
  expect(sha(bytes), object.key).toBe(object.sha256);
}

beforeAll(async () => {
  const s3 = s3TestConfig();
  uploader = new S3ObjectStore({ bucket: s3.bucket, prefix: PREFIX, endpoint: s3.endpoint });
  scratch = tempDir('cairn-direct-get-');
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const p of proxies.splice(0)) await p.close();
});

afterAll(async () => {
  if (uploader) {
    await uploader.delete((await collect(uploader.list(''))).map((o) => o.key));
    await uploader.close();
  }
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

describe('S3 direct downloads (MinIO, through a TCP proxy)', () => {
  it('40+ concurrent downloads through a 2-segment pool: every file byte-identical, sha256 right, no request sent twice', { timeout: 180_000 }, async () => {
    const partSize = 10 * MiB - 1;
    const sizes = [0, 1, 255, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 8 * MiB, 9 * MiB, partSize];
    while (sizes.length < 40) sizes.push(Math.floor(Math.random() * 9 * MiB) + 1);
    // Ranged parts: a 1-byte last part, and four parts of which the last is short.
    sizes.push(partSize + 1, 3 * partSize + 12_345);
    const objects = await Promise.all(sizes.map((size, i) => upload(`burst/${i}-${size}`, size)));

    const proxy = await startProxy();
    const { store, retries } = storeVia(proxy, { downloadPartSizeBytes: partSize });
    const results = await Promise.all(
      objects.map(async (o) => {
        const path = target();
        let progress = 0;
        const result = await store.downloadFile(o.key, path, { sha256: true, onBytes: (d) => (progress += d) });
        return { o, path, result, progress };
      }),
    );

    for (const { o, path, result, progress } of results) {
      await expectIntact(path, o);
      expect(result.size, o.key).toBe(o.size);
      expect(progress, o.key).toBe(o.size);
      if (o.size <= partSize) expect(result.sha256, o.key).toBe(o.sha256);
      // Several parts: no in-stream hash, and never a wrong one.
      else expect([undefined, o.sha256], o.key).toContain(result.sha256);
    }
    expect(retries).toEqual([]);
    // The direct path carried the bodies: one GET per part, none sent twice (a resend would
    // mean a request stalled on a kept-alive connection and was repeated on a fresh one).
    const direct = proxy.directGets().map((r) => `${r.path} ${r.range ?? 'whole'}`);
    const twice = direct.filter((k, i) => direct.indexOf(k) !== i);
    expect(twice).toEqual([]);
    const parts = objects.reduce((n, o) => n + Math.max(1, Math.ceil(o.size / partSize)), 0);
    // + one plain GET for each empty object (its ranged GET is answered 416).
    const empty = objects.filter((o) => o.size === 0).length;
    expect(direct).toHaveLength(parts + empty);
    // Connections were kept alive and reused.
    expect(proxy.requests.some((r) => r.reused)).toBe(true);
  });

  it('a body that ends while waiting for a pool segment leaves its connection fit for reuse', async () => {
    // X and Y each hold one of the two segments, half filled: the proxy keeps the rest of their bodies.
    const [x, y, z, ...next] = await Promise.all([
      upload('wait/x', 2 * MiB),
      upload('wait/y', 2 * MiB),
      upload('wait/z', 1000),
      upload('wait/n0', 300_000),
      upload('wait/n1', 300_001),
      upload('wait/n2', 300_002),
    ]);
    const proxy = await startProxy();
    // Bounds the stall a paused reused socket would cause (it would then show as a resent request).
    const { store, retries } = storeVia(proxy, { maxAttempts: 3, requestTimeoutMs: 10_000 });
    const half = 512 * 1024;
    proxy.inject({ match: (r) => directGet(r) && r.path.endsWith('/wait/x'), afterBodyBytes: half, then: 'hold' });
    proxy.inject({ match: (r) => directGet(r) && r.path.endsWith('/wait/y'), afterBodyBytes: half, then: 'hold' });
    const halfway = (object: Uploaded) => {
      let seen = 0;
      let reached!: () => void;
      const reachedHalf = new Promise<void>((resolve) => (reached = resolve));
      const path = target();
      const done = store.downloadFile(object.key, path, {
        onBytes: (d) => {
          seen += d;
          if (seen === half) reached();
        },
      });
      return { path, done, reachedHalf };
    };
    const dx = halfway(x!);
    const dy = halfway(y!);
    await Promise.all([dx.reachedHalf, dy.reachedHalf]);
    // Z's whole body arrives while the pool is empty; the held bodies go on only once it has.
    const zPath = target();
    let released = 0;
    await store.downloadFile(z!.key, zPath, { onBytes: () => (released ||= proxy.releaseHeld()) });
    expect(released).toBe(2);
    await Promise.all([dx.done, dy.done]);
    await expectIntact(dx.path, x!);
    await expectIntact(dy.path, y!);
    await expectIntact(zPath, z!);

    // Three idle connections, three downloads: Z's connection is reused too.
    const before = proxy.requests.length;
    await Promise.all(next.map(async (o) => {
      const path = target();
      await store.downloadFile(o.key, path);
      await expectIntact(path, o);
    }));
    const again = proxy.requests.slice(before);
    expect(again.map((r) => r.reused)).toEqual([true, true, true]);
    expect(proxy.accepted).toBe(3);
    expect(retries).toEqual([]);
  });

  describe('a connection cut after N body bytes', () => {
    it('a whole-object GET: retried, the file is intact, sha256 and progress count the good attempt only', async () => {
      const o = await upload('cut/whole', 6 * MiB + 123);
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy, { maxAttempts: 3 });
      proxy.inject({ afterBodyBytes: MiB + 7, then: 'cut' });
      const path = target();
      let progress = 0;
      const result = await store.downloadFile(o.key, path, { sha256: true, onBytes: (d) => (progress += d) });
      expect(proxy.unusedFaults).toBe(0);
      await expectIntact(path, o);
      expect(result).toEqual({ size: o.size, sha256: o.sha256 });
      expect(progress).toBe(o.size);
      expect(retries.map((r) => [r.op, r.error.code])).toEqual([['downloadFile', 'STORE_UNAVAILABLE']]);
    });

    it('one ranged part of a multi-part download: that part is retried, the file is intact', async () => {
      const partSize = 2 * MiB;
      const o = await upload('cut/parts', 7 * MiB + 5);
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy, { maxAttempts: 3, downloadPartSizeBytes: partSize });
      proxy.inject({ match: (r) => directGet(r) && r.range === `bytes=${2 * partSize}-${3 * partSize - 1}`, afterBodyBytes: 100 * 1024 + 3, then: 'cut' });
      const path = target();
      let progress = 0;
      const result = await store.downloadFile(o.key, path, { onBytes: (d) => (progress += d) });
      expect(proxy.unusedFaults).toBe(0);
      await expectIntact(path, o);
      expect(result.size).toBe(o.size);
      expect(progress).toBe(o.size);
      expect(retries).toHaveLength(1);
      expect(proxy.directGets().filter((r) => r.range === `bytes=${2 * partSize}-${3 * partSize - 1}`)).toHaveLength(2);
    });

    it('with maxAttempts 1: STORE_UNAVAILABLE', async () => {
      const o = await upload('cut/once', 3 * MiB);
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy, { maxAttempts: 1 });
      proxy.inject({ afterBodyBytes: 64 * 1024, then: 'cut' });
      const err = await store.downloadFile(o.key, target()).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: false });
      expect(retries).toEqual([]);
    });
  });

  describe('a server that goes silent', () => {
    it('after the response head, with maxAttempts 1: STORE_UNAVAILABLE once requestTimeoutMs passes', async () => {
      const o = await upload('silent/head', 2 * MiB);
      const proxy = await startProxy();
      const { store } = storeVia(proxy, { maxAttempts: 1, requestTimeoutMs: 1500 });
      proxy.inject({ afterBodyBytes: 0, then: 'stall' });
      await expectCode(store.downloadFile(o.key, target()), 'STORE_UNAVAILABLE');
      expect(proxy.unusedFaults).toBe(0);
    });

    it('mid-body on the first attempt, with maxAttempts 2: retried, the file is intact', async () => {
      const o = await upload('silent/body', 5 * MiB + 1);
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy, { maxAttempts: 2, requestTimeoutMs: 1500 });
      proxy.inject({ afterBodyBytes: 512 * 1024, then: 'stall' });
      const path = target();
      const result = await store.downloadFile(o.key, path, { sha256: true });
      await expectIntact(path, o);
      expect(result).toEqual({ size: o.size, sha256: o.sha256 });
      expect(retries.map((r) => r.error.code)).toEqual(['STORE_UNAVAILABLE']);
    });
  });

  describe('error answers are mapped through the SDK', () => {
    it('a missing key: NOT_FOUND (the direct path asked first)', async () => {
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy);
      await expectCode(store.downloadFile('errors/no-such-key', target()), 'NOT_FOUND');
      expect(retries).toEqual([]);
      expect(proxy.directGets()).toHaveLength(1);
      expect(proxy.requests.filter((r) => r.sdk && r.method === 'GET')).toHaveLength(1);
    });

    it('wrong credentials (403): STORE_FAILED, not retryable', async () => {
      const o = await upload('errors/forbidden', 1000);
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy, { credentials: { accessKeyId: 'nobody', secretAccessKey: 'wrong-secret' } });
      const err = await store.downloadFile(o.key, target()).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'STORE_FAILED', retryable: false });
      expect(retries).toEqual([]);
      expect(proxy.directGets()).toHaveLength(1);
      expect(proxy.requests.filter((r) => r.sdk && r.method === 'GET')).toHaveLength(1);
    });

    it.each([true, false])('an object replaced while its parts are fetched: CONDITION_FAILED (directDownloads %s)', async (directDownloads) => {
      const partSize = MiB;
      const key = `errors/replaced-${directDownloads}`;
      await upload(key, 4 * MiB + 1);
      const proxy = await startProxy();
      const { store } = storeVia(proxy, { directDownloads, downloadPartSizeBytes: partSize });
      // The second part's request waits at the proxy until the object has a new version.
      proxy.inject({ match: (r) => r.method === 'GET' && r.range === `bytes=${partSize}-${2 * partSize - 1}`, before: () => upload(key, 4 * MiB + 1).then(() => undefined) });
      await expectCode(store.downloadFile(key, target()), 'CONDITION_FAILED');
      expect(proxy.unusedFaults).toBe(0);
      if (directDownloads) expect(proxy.directGets().length).toBeGreaterThan(0);
      else expect(proxy.directGets()).toEqual([]);
    });
  });

  describe('kept-alive connections', () => {
    const downloadAllIntact = (store: S3ObjectStore, objects: Array<Parameters<typeof expectIntact>[1] & { key: string }>) =>
      Promise.all(
        objects.map(async (o) => {
          const path = target();
          await store.downloadFile(o.key, path);
          await expectIntact(path, o);
        }),
      );
    it('closed by the server while idle: the next downloads succeed with no retry', async () => {
      const objects = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => upload(`keepalive/${i}`, 300 * 1024 + i * 77_777)));
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy, { maxAttempts: 3 });
      const all = () => downloadAllIntact(store, objects);

      await all();
      expect(proxy.closeIdle()).toBeGreaterThan(0);
      await all();
      expect(retries).toEqual([]);
    });

    it('closed by the server just as they are reused: the request is re-sent on a fresh connection, no retry counted', async () => {
      const objects = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => upload(`stale/${i}`, 200 * 1024 + i * 33_333)));
      const proxy = await startProxy();
      const { store, retries } = storeVia(proxy, { maxAttempts: 3 });
      const all = () => downloadAllIntact(store, objects);

      await all();
      const stale = proxy.staleIdle();
      expect(stale).toBeGreaterThan(0);
      await all();
      // The stale connections were really used, and their requests repeated transparently.
      expect(proxy.dropped).toBeGreaterThan(0);
      expect(retries).toEqual([]);
      // Sequentially too: one download at a time reuses one connection after another.
      proxy.staleIdle();
      for (const o of objects) {
        const path = target();
        await store.downloadFile(o.key, path);
        await expectIntact(path, o);
      }
      expect(retries).toEqual([]);
    });
  });

  describe('abort', () => {
    it('aborting mid-download (from onBytes) rejects with ABORTED, leaks no segment, leaves nothing running', { timeout: 120_000 }, async () => {
      const o = await upload('abort/big', 12 * MiB + 1);
      const proxy = await startProxy();
      const { store } = storeVia(proxy, { downloadPartSizeBytes: 2 * MiB });
      // Three times: the pool has two segments, so any segment an abort kept would stall the last download.
      for (let i = 0; i < 3; i++) {
        const abort = new AbortController();
        let seen = 0;
        const download = store.downloadFile(o.key, target(), {
          signal: abort.signal,
          onBytes: (d) => {
            seen += d;
            if (seen > MiB) abort.abort();
          },
        });
        await expectCode(download, 'ABORTED');
        expect(seen).toBeLessThan(o.size);
      }
      const path = target();
      await store.downloadFile(o.key, path);
      await expectIntact(path, o);
      await store.close();
      // Every connection the store opened is closed: nothing is left reading or writing.
      await proxy.whenAllClosed();
      expect(proxy.openConnections).toBe(0);
    });

    it('aborting while a part request waits at the server rejects with ABORTED; the store closes at once', async () => {
      const partSize = MiB;
      const o = await upload('abort/held', 6 * MiB);
      const proxy = await startProxy();
      const { store } = storeVia(proxy, { downloadPartSizeBytes: partSize });
      const abort = new AbortController();
      proxy.inject({ match: (r) => directGet(r) && r.range === `bytes=${3 * partSize}-${4 * partSize - 1}`, before: async () => abort.abort() });
      await expectCode(store.downloadFile(o.key, target(), { signal: abort.signal }), 'ABORTED');
      await store.close();
      await proxy.whenAllClosed();
      expect(proxy.openConnections).toBe(0);
    });
  });

  it('directDownloads false and true write identical files', { timeout: 120_000 }, async () => {
    const partSize = 2 * MiB;
    const sizes = [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, partSize, partSize + 1, 9 * MiB + 333, Math.floor(Math.random() * 3 * MiB)];
    const objects = await Promise.all(sizes.map((size, i) => upload(`same/${i}-${size}`, size)));
    const proxy = await startProxy();
    const { store: sdk } = storeVia(proxy, { directDownloads: false, downloadPartSizeBytes: partSize });
    const sdkGets = () => proxy.requests.filter((r) => r.method === 'GET');
    const viaSdk = await Promise.all(objects.map(async (o) => {
      const path = target();
      return { path, result: await sdk.downloadFile(o.key, path, { sha256: true }) };
    }));
    expect(sdkGets().every((r) => r.sdk)).toBe(true);
    const { store: direct } = storeVia(proxy, { directDownloads: true, downloadPartSizeBytes: partSize });
    const viaDirect = await Promise.all(objects.map(async (o) => {
      const path = target();
      return { path, result: await direct.downloadFile(o.key, path, { sha256: true }) };
    }));
    expect(proxy.directGets().length).toBeGreaterThanOrEqual(objects.length);

    for (const [i, o] of objects.entries()) {
      const a = await readFile(viaSdk[i]!.path);
      const b = await readFile(viaDirect[i]!.path);
      expect(b.equals(a), o.key).toBe(true);
      await expectIntact(viaDirect[i]!.path, o);
      expect(viaDirect[i]!.result, o.key).toEqual(viaSdk[i]!.result);
    }
  });
});
