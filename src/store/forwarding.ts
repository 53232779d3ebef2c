import type { CopyOptions, DownloadOptions, DownloadResult, GetOptions, GetResult, ObjectInfo, ObjectStore, PutOptions, PutResult, StoreCapabilities, UploadOptions, UploadResult } from './types.js';

/** The operations of an ObjectStore, as wrappers name them in metrics, retries and fault rules. */
export type StoreOp = 'get' | 'head' | 'put' | 'uploadFile' | 'downloadFile' | 'copy' | 'delete' | 'tag' | 'list' | 'listFolders';

/** One call passing through a wrapper. */
export interface StoreCall {
  op: StoreOp;
  /** The object the call writes or reads: the target of a copy, the first key of a delete, the prefix of a list. */
  key: string;
  /** A copy's source. */
  from?: string;
  signal?: AbortSignal;
}

/**
 * The base for wrappers (OpenDAL's layers): every method forwards to the wrapped store, and
 * every call that returns a promise passes through `around`, so a wrapper that times, counts,
 * retries or faults calls overrides that one method and, where it changes more (a retry that
 * restarts a listing, metrics that count bytes), only the methods it changes.
 *
 * The wrapped store may be built on first use (`target` returns a promise): LazyObjectStore.
 */
export abstract class ForwardingObjectStore implements ObjectStore {
  abstract readonly capabilities: StoreCapabilities;
  abstract readonly url: string;

  /** The store calls go to. */
  protected abstract target(): ObjectStore | Promise<ObjectStore>;

  /** Runs one call (`attempt` counts from 1 for a wrapper that repeats it); the default runs it once, unchanged. */
  protected around<T>(_call: StoreCall, run: (attempt: number) => Promise<T>): Promise<T> {
    return run(1);
  }

  get(key: string, options?: GetOptions): Promise<GetResult> {
    return this.around({ op: 'get', key }, () => this.forward((s) => s.get(key, options)));
  }

  head(key: string): Promise<ObjectInfo> {
    return this.around({ op: 'head', key }, () => this.forward((s) => s.head(key)));
  }

  put(key: string, body: Buffer | string, options?: PutOptions): Promise<PutResult> {
    return this.around({ op: 'put', key }, () => this.forward((s) => s.put(key, body, options)));
  }

  uploadFile(key: string, path: string, options?: UploadOptions): Promise<UploadResult> {
    return this.around({ op: 'uploadFile', key, ...signalOf(options) }, () => this.forward((s) => s.uploadFile(key, path, options)));
  }

  downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    return this.around({ op: 'downloadFile', key, ...signalOf(options) }, () => this.forward((s) => s.downloadFile(key, path, options)));
  }

  copy(from: string, to: string, options?: CopyOptions): Promise<PutResult> {
    return this.around({ op: 'copy', key: to, from }, () => this.forward((s) => s.copy(from, to, options)));
  }

  delete(keys: string[]): Promise<void> {
    return this.around({ op: 'delete', key: keys[0] ?? '' }, () => this.forward((s) => s.delete(keys)));
  }

  tag(key: string, tags: Record<string, string>): Promise<void> {
    return this.around({ op: 'tag', key }, () => this.forward((s) => s.tag(key, tags)));
  }

  /** Listings stream, so they do not pass through `around`; a wrapper that needs them overrides this. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.target()).list(prefix);
  }

  listFolders(prefix: string): Promise<string[]> {
    return this.around({ op: 'listFolders', key: prefix }, () => this.forward((s) => s.listFolders(prefix)));
  }

  async close(): Promise<void> {
    await (await this.target()).close();
  }

  private forward<T>(fn: (store: ObjectStore) => Promise<T>): Promise<T> {
    const t = this.target();
    return t instanceof Promise ? t.then(fn) : fn(t);
  }
}

/** A wrapper over a store that already exists: capabilities and url are the wrapped store's. */
export class WrappedObjectStore extends ForwardingObjectStore {
  constructor(readonly inner: ObjectStore) {
    super();
  }

  get capabilities(): StoreCapabilities {
    return this.inner.capabilities;
  }

  get url(): string {
    return this.inner.url;
  }

  protected target(): ObjectStore {
    return this.inner;
  }
}

/** The part of a transfer's options a StoreCall carries. */
export function signalOf(options: { signal?: AbortSignal } | undefined): { signal?: AbortSignal } {
  return options?.signal ? { signal: options.signal } : {};
}
