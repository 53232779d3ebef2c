import { open, stat, utimes } from 'node:fs/promises';
import { CairnError, type ErrorCode } from '../../src/core/errors.js';
import { sha256File } from '../../src/core/checksums.js';
import { WrappedObjectStore, type StoreCall, type StoreOp } from '../../src/store/forwarding.js';
import type { DownloadOptions, DownloadResult, GetOptions, GetResult, ObjectInfo, ObjectStore } from '../../src/store/types.js';

/**
 * A fault injector over a real ObjectStore (never a stand-in for one): selected calls fail
 * with a CairnError (STORE_UNAVAILABLE, retryable, unless told otherwise), succeed and then
 * fail (an ambiguous write: the object landed but the caller hears an error), return
 * corrupted bytes, or pause at a gate the test opens. Everything else passes through.
 *
 * Rules are checked in the order added; the first rule that matches a call decides it.
 */
export type { StoreOp } from '../../src/store/forwarding.js';

export type FaultMode =
  /** Throw before touching the store. */
  | 'fail'
  /** Perform the call, then throw: a write that landed although the caller saw an error. */
  | 'fail-after'
  /** get / downloadFile: deliver the bytes with one byte flipped (or truncated when empty). */
  | 'corrupt';

export interface FaultRule {
  op: StoreOp | StoreOp[];
  /** Only keys (the first key for delete, the prefix for list) that match. Default: all. */
  key?: string | RegExp | ((key: string) => boolean);
  mode: FaultMode;
  /** Let this many matching calls through untouched first. Default 0. */
  skip?: number;
  /** Fault at most this many matching calls (after `skip`). Default: unlimited. */
  times?: number;
  /** Only while this returns true (checked per call): a switchable outage. */
  when?: () => boolean;
  code?: ErrorCode;
}

export interface FaultHandle {
  /** Calls this rule has faulted so far. */
  readonly hits: number;
  remove(): void;
}

/** A pause point: a call that matches waits at the gate until `release()`. */
export interface Gate {
  /** Resolves when the first matching call has arrived (and is waiting). */
  arrived: Promise<void>;
  release(): void;
  remove(): void;
}

export interface CallRecord {
  op: StoreOp;
  key: string;
  outcome: 'ok' | 'faulted' | 'error';
}

interface ActiveRule extends FaultRule {
  seen: number;
  hits: number;
}

interface ActiveGate {
  op: StoreOp[];
  key: FaultRule['key'];
  times: number;
  arrive: () => void;
  opened: Promise<void>;
}

function keyMatches(matcher: FaultRule['key'], key: string): boolean {
  if (matcher === undefined) return true;
  if (typeof matcher === 'string') return key === matcher;
  if (matcher instanceof RegExp) return matcher.test(key);
  return matcher(key);
}

export function injectedError(op: StoreOp, key: string, code: ErrorCode = 'STORE_UNAVAILABLE'): CairnError {
  return new CairnError(code, `injected fault: ${op} ${key}`, { details: { key, injected: true } });
}

function flip(body: Buffer): Buffer {
  if (body.length === 0) return Buffer.from([0x2a]);
  const out = Buffer.from(body);
  const at = Math.floor(out.length / 2);
  out[at] = out[at]! ^ 0xff;
  return out;
}

async function corruptFile(path: string): Promise<void> {
  await flipByteInFile(path);
}

/**
 * Damage on a disk, not a rewrite: XORs one byte of a file in place (at `at`, default the
 * middle; an empty file gets one byte). With `keepTimes` the file's times are put back, so
 * nothing that looks at inode, size and mtime can tell.
 */
export async function flipByteInFile(path: string, options: { at?: number; mask?: number; keepTimes?: boolean } = {}): Promise<void> {
  const before = await stat(path);
  const fh = await open(path, 'r+');
  try {
    if (before.size === 0) {
      await fh.write(Buffer.from([0x2a]), 0, 1, 0);
      return;
    }
    const at = options.at ?? Math.floor(before.size / 2);
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ (options.mask ?? 0xff);
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
  if (options.keepTimes) await utimes(path, before.atime, before.mtime);
}

export class FaultyStore extends WrappedObjectStore {
  private readonly rules: ActiveRule[] = [];
  private readonly gates: ActiveGate[] = [];
  /** Every call, in order of completion, with how it ended. */
  readonly calls: CallRecord[] = [];

  constructor(inner: ObjectStore) {
    super(inner);
  }

  /** Adds a fault rule; returns a handle that counts hits and removes the rule. */
  inject(rule: FaultRule): FaultHandle {
    const active: ActiveRule = { ...rule, seen: 0, hits: 0 };
    this.rules.push(active);
    return {
      get hits() {
        return active.hits;
      },
      remove: () => {
        const i = this.rules.indexOf(active);
        if (i >= 0) this.rules.splice(i, 1);
      },
    };
  }

  /** A whole-store outage (every op) while `when()` holds, or until removed. */
  outage(when?: () => boolean): FaultHandle {
    return this.inject({ op: ['get', 'head', 'put', 'uploadFile', 'downloadFile', 'copy', 'delete', 'tag', 'list', 'listFolders'], mode: 'fail', ...(when ? { when } : {}) });
  }

  /** Pauses the next `times` (default 1) matching calls until release(). */
  gate(op: StoreOp | StoreOp[], key?: FaultRule['key'], times = 1): Gate {
    let arrive!: () => void;
    let release!: () => void;
    const arrived = new Promise<void>((r) => (arrive = r));
    const opened = new Promise<void>((r) => (release = r));
    const g: ActiveGate = { op: Array.isArray(op) ? op : [op], key, times, arrive, opened };
    this.gates.push(g);
    const remove = () => {
      const i = this.gates.indexOf(g);
      if (i >= 0) this.gates.splice(i, 1);
    };
    return { arrived, release, remove };
  }

  /** Removes every rule and opens nothing (gates stay until released or removed). */
  heal(): void {
    this.rules.splice(0);
  }

  /** Every call meets the gates and rules; get and downloadFile can also deliver damaged bytes. */
  protected override around<T>(call: StoreCall, run: (attempt: number) => Promise<T>): Promise<T> {
    return this.call(call.op, call.key, () => run(1));
  }

  override get(key: string, options?: GetOptions): Promise<GetResult> {
    return this.call('get', key, () => this.inner.get(key, options), async (r) => ({ ...r, body: flip(r.body) }));
  }

  override downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    return this.call('downloadFile', key, () => this.inner.downloadFile(key, path, options), async (r) => {
      await corruptFile(path);
      // Damage in transit: a hash computed while the bytes arrive would have seen it too.
      if (r.sha256 === undefined) return r;
      const { sha256, size } = await sha256File(path);
      return { ...r, sha256, size };
    });
  }

  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const rule = this.match('list', prefix);
    await this.pass('list', prefix);
    if (rule && rule.mode !== 'corrupt') {
      this.calls.push({ op: 'list', key: prefix, outcome: 'faulted' });
      throw injectedError('list', prefix, rule.code);
    }
    yield* this.inner.list(prefix);
  }

  private match(op: StoreOp, key: string): ActiveRule | undefined {
    for (const rule of this.rules) {
      const ops = Array.isArray(rule.op) ? rule.op : [rule.op];
      if (!ops.includes(op) || !keyMatches(rule.key, key)) continue;
      if (rule.when && !rule.when()) continue;
      rule.seen++;
      if (rule.seen <= (rule.skip ?? 0)) continue;
      if (rule.times !== undefined && rule.hits >= rule.times) continue;
      rule.hits++;
      return rule;
    }
    return undefined;
  }

  private async pass(op: StoreOp, key: string): Promise<void> {
    const g = this.gates.find((x) => x.op.includes(op) && keyMatches(x.key, key));
    if (!g) return;
    if (--g.times <= 0) this.gates.splice(this.gates.indexOf(g), 1);
    g.arrive();
    await g.opened;
  }

  private async call<T>(op: StoreOp, key: string, real: () => Promise<T>, corrupt?: (r: T) => Promise<T>): Promise<T> {
    await this.pass(op, key);
    const rule = this.match(op, key);
    if (rule?.mode === 'fail') {
      this.calls.push({ op, key, outcome: 'faulted' });
      throw injectedError(op, key, rule.code);
    }
    let result: T;
    try {
      result = await real();
    } catch (err) {
      this.calls.push({ op, key, outcome: 'error' });
      throw err;
    }
    if (rule?.mode === 'fail-after') {
      this.calls.push({ op, key, outcome: 'faulted' });
      throw injectedError(op, key, rule.code);
    }
    if (rule?.mode === 'corrupt' && corrupt) {
      this.calls.push({ op, key, outcome: 'faulted' });
      return corrupt(result);
    }
    this.calls.push({ op, key, outcome: 'ok' });
    return result;
  }
}

/**
 * A slow link to a real store: downloads, together, take as long as `bytesPerSecond` allows
 * (the bytes move at full speed, then each call waits for its turn on the shared link);
 * everything else passes through.
 */
export class ThrottledStore extends FaultyStore {
  downloadedBytes = 0;
  private linkFreeAt = 0;

  constructor(inner: ObjectStore, private readonly bytesPerSecond: number) {
    super(inner);
  }

  override async downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    const result = await super.downloadFile(key, path, options);
    this.downloadedBytes += result.size;
    const due = Math.max(Date.now(), this.linkFreeAt) + (result.size / this.bytesPerSecond) * 1000;
    this.linkFreeAt = due;
    await new Promise((r) => setTimeout(r, due - Date.now()));
    return result;
  }
}
