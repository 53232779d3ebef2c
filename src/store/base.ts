import { readFile, writeFile } from 'node:fs/promises';
import { sha256Hex } from '../core/checksums.js';
import { CairnError } from '../core/errors.js';
import { localError } from './transfer.js';
import { checkPutOptions, throwIfAborted, unquoteEtag, validateFolderPrefix, validateKey, validatePrefix, validateRange } from './keys.js';
import type { ByteRange, CopyOptions, DownloadOptions, DownloadResult, GetOptions, GetResult, ObjectInfo, ObjectStore, PutOptions, PutResult, StoreCapabilities, UploadOptions, UploadResult } from './types.js';

/**
 * The base every backend extends (Level's abstract-level habit): the public methods check
 * keys, prefixes, ranges and options once, normalise what callers may spell two ways (a string
 * body, a quoted ETag), honour an already-aborted signal, and only then call the backend's
 * `_get`, `_put`, …, so a backend holds its own mechanics and nothing else.
 *
 * A backend must write five methods: `_get`, `_head`, `_put`, `_delete` and `_list`. The rest
 * have working defaults built on those five, for a backend that has nothing better:
 * `_uploadFile` / `_downloadFile` move the file through memory, `_copy` reads and rewrites (and
 * checks `expect.sha256` / `expect.etag` itself), `_listFolders` walks `_list`, `_tag` refuses
 * (capabilities.tagging false) and `_close` does nothing. The filesystem and S3 backends
 * override them all.
 */
export abstract class AbstractObjectStore implements ObjectStore {
  abstract readonly capabilities: StoreCapabilities;
  abstract readonly url: string;

  get(key: string, options: GetOptions = {}): Promise<GetResult> {
    return guard(() => {
      validateKey(key);
      if (options.range) validateRange(options.range);
      return this._get(key, options);
    });
  }

  head(key: string): Promise<ObjectInfo> {
    return guard(() => this._head(validateKey(key)));
  }

  put(key: string, body: Buffer | string, options: PutOptions = {}): Promise<PutResult> {
    return guard(() => {
      validateKey(key);
      checkPutOptions(options);
      const normalised = options.ifMatch === undefined ? options : { ...options, ifMatch: unquoteEtag(options.ifMatch) };
      return this._put(key, typeof body === 'string' ? Buffer.from(body) : body, normalised);
    });
  }

  uploadFile(key: string, path: string, options: UploadOptions = {}): Promise<UploadResult> {
    return guard(() => {
      validateKey(key);
      throwIfAborted(options.signal, `upload ${key}`);
      return this._uploadFile(key, path, options);
    });
  }

  downloadFile(key: string, path: string, options: DownloadOptions = {}): Promise<DownloadResult> {
    return guard(() => {
      validateKey(key);
      throwIfAborted(options.signal, `download ${key}`);
      return this._downloadFile(key, path, options);
    });
  }

  copy(from: string, to: string, options: CopyOptions = {}): Promise<PutResult> {
    return guard(() => {
      validateKey(from);
      validateKey(to);
      const etag = options.expect?.etag;
      return this._copy(from, to, etag === undefined ? options : { ...options, expect: { ...options.expect, etag: unquoteEtag(etag) } });
    });
  }

  delete(keys: string[]): Promise<void> {
    return guard(() => {
      for (const key of keys) validateKey(key);
      return keys.length === 0 ? undefined : this._delete(keys);
    });
  }

  tag(key: string, tags: Record<string, string>): Promise<void> {
    return guard(() => this._tag(validateKey(key), tags));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    yield* this._list(prefix);
  }

  listFolders(prefix: string): Promise<string[]> {
    return guard(() => this._listFolders(validateFolderPrefix(prefix)));
  }

  close(): Promise<void> {
    return this._close();
  }

  /** Called with a valid key and a checked range (end clamping is the backend's: see sliceRange). */
  protected abstract _get(key: string, options: GetOptions): Promise<GetResult>;
  protected abstract _head(key: string): Promise<ObjectInfo>;
  /** `ifMatch` arrives unquoted, never together with `ifNoneMatch`. */
  protected abstract _put(key: string, body: Buffer, options: PutOptions): Promise<PutResult>;
  /** At least one key, every key valid; absent keys are not an error. */
  protected abstract _delete(keys: string[]): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order. */
  protected abstract _list(prefix: string): AsyncIterable<ObjectInfo>;

  protected async _uploadFile(key: string, path: string, options: UploadOptions): Promise<UploadResult> {
    const body = await readFile(path).catch((err: unknown) => Promise.reject(localError(err, path)));
    if (options.sha256 !== undefined && sha256Hex(body) !== options.sha256) {
      throw new CairnError('CORRUPT', `upload ${key}: ${path} does not hash to the sha256 given`, { details: { key, path } });
    }
    const { etag } = await this._put(key, body, options.storageClass === undefined ? {} : { storageClass: options.storageClass });
    options.onBytes?.(body.length);
    return { etag, size: body.length };
  }

  protected async _downloadFile(key: string, path: string, options: DownloadOptions): Promise<DownloadResult> {
    const { body } = await this._get(key, {});
    throwIfAborted(options.signal, `download ${key}`);
    await writeFile(path, body).catch((err: unknown) => Promise.reject(localError(err, path)));
    options.onBytes?.(body.length);
    return { size: body.length, ...(options.sha256 ? { sha256: sha256Hex(body) } : {}) };
  }

  protected async _copy(from: string, to: string, options: CopyOptions): Promise<PutResult> {
    const { body, etag } = await this._get(from, {});
    const expect = options.expect;
    if ((expect?.etag !== undefined && expect.etag !== etag) || (expect?.sha256 !== undefined && expect.sha256 !== sha256Hex(body))) {
      throw new CairnError('CORRUPT', `copy ${from}: the object is no longer the one recorded; not copied`, { details: { key: from } });
    }
    return this._put(to, body, options.storageClass === undefined ? {} : { storageClass: options.storageClass });
  }

  protected async _listFolders(prefix: string): Promise<string[]> {
    const folders = new Set<string>();
    for await (const { key } of this._list(prefix)) {
      const rest = key.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash > 0) folders.add(rest.slice(0, slash));
    }
    return [...folders].sort();
  }

  protected async _tag(key: string, _tags: Record<string, string>): Promise<void> {
    throw new CairnError('STORE_FAILED', `tag ${key}: the ${this.capabilities.name} store has no object tags`, { details: { key } });
  }

  protected async _close(): Promise<void> {}
}

/**
 * The bytes `range` selects from an object of `body.length` bytes: the end is clamped to the
 * size, and a non-empty range that starts at or past the end is BAD_INPUT (as S3 answers 416).
 */
export function sliceRange(body: Buffer, range: ByteRange | undefined, key: string): Buffer {
  if (!range) return body;
  const { start, end } = clampRange(range, body.length, key);
  return body.subarray(start, end);
}

/** The clamping rule of sliceRange, for a backend that reads only the bytes it needs. */
export function clampRange(range: ByteRange, size: number, key: string): ByteRange {
  if (range.start >= size && range.end > range.start) {
    throw new CairnError('BAD_INPUT', `range start ${range.start} is beyond the end of ${key} (${size} bytes)`);
  }
  const end = Math.min(range.end, size);
  return { start: range.start, end: Math.max(end, range.start) };
}

/** Validation throws synchronously; callers of an async API expect a rejected promise. */
function guard<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}


