import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import PQueue from 'p-queue';
import { STORE_DEFAULTS } from '../core/config.js';
import { S3_DEFAULTS } from '../core/defaults.js';
import { CairnError, isCairnError } from '../core/errors.js';
import { AbstractObjectStore } from './base.js';
import { throwIfAborted, unquoteEtag, validateKey } from './keys.js';
import { mapS3Error, type S3ErrorContext } from './s3-errors.js';
import { buildClient, maxSocketsOf, regionOf, usesPathStyle } from './s3-client.js';
import { s3Capabilities, s3Url, type S3ObjectStoreOptions } from './s3-options.js';
import { progressAcrossAttempts, resolveOwnWrite, retryRequest, STORE_BACKOFF, type RetryHooks, type RetryPolicy } from './request-retry.js';
import { ByteBudget, localSize, partRanges, readExactly, runAllOrAbort, writeAt, type Range } from './transfer.js';
import { DirectGetter, type DirectGetResult, type DirectGetSink } from './s3-direct-get.js';
import type { ClassedWrite, CopyOptions, DownloadOptions, DownloadResult, GetOptions, GetResult, ObjectInfo, PutOptions, PutResult, StoreCapabilities, TransferProgress, UploadOptions, UploadResult } from './types.js';

export { s3OptionsFromConfig, type S3ObjectStoreOptions } from './s3-client.js';

const MiB = 1024 * 1024;

/**
 * Send options for requests that carry a file's bytes (PutObject from uploadFile, UploadPart):
 * no deadline for the response headers, which would count the upload time of a large body on
 * a slow link. The socket inactivity timeout (requestTimeoutMs) still fails a silent server.
 */
const UPLOAD_BODY = { requestTimeout: 0 } as const;

/**
 * The S3 backend. Bulk paths are where the time goes (checkpoint upload, restore), so
 * files move in parallel parts over a shared, bounded request queue, and downloads write
 * each ranged GET straight to its offset in the target file (no reassembly in memory).
 *
 * It is the one retry layer for its requests (see request-retry.ts): every HTTP request
 * goes through `call`, which retries it alone — a part that fails costs that part, a list
 * page that fails is asked again with the same continuation token — with
 * `maxAttempts` attempts and the store backoff. The SDK makes one attempt per call, and no
 * wrapper above retries S3 operations again. Each attempt is bounded by the client's
 * connect and response timeouts (s3-client.ts), so a request against a server that never
 * answers ends after about maxAttempts × requestTimeoutMs plus a few seconds of backoff.
 */
export class S3ObjectStore extends AbstractObjectStore {
  readonly capabilities: StoreCapabilities;
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly ownsClient: boolean;
  private readonly queue: PQueue;
  private readonly uploadBudget: ByteBudget;
  private readonly storageClass: StorageClass | undefined;
  private readonly threshold: number;
  private readonly partSize: number;
  private readonly downloadPartSize: number;
  private readonly copyPartSize: number;
  private readonly policy: RetryPolicy;
  private readonly hooks: RetryHooks;
  private readonly direct: DirectGetter | undefined;

  constructor(options: S3ObjectStoreOptions) {
    super();
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (this.prefix) validateKey(this.prefix);
    this.url = s3Url(options);
    this.storageClass = options.storageClass as StorageClass | undefined;
    this.threshold = options.multipartThresholdBytes ?? STORE_DEFAULTS.multipartThresholdBytes;
    this.partSize = Math.max(5 * MiB, options.partSizeBytes ?? STORE_DEFAULTS.partSizeBytes);
    this.downloadPartSize = Math.max(MiB, options.downloadPartSizeBytes ?? S3_DEFAULTS.downloadPartSizeBytes);
    this.copyPartSize = Math.max(5 * MiB, options.copyPartSizeBytes ?? S3_DEFAULTS.copyPartSizeBytes);
    this.capabilities = s3Capabilities(options);
    this.policy = { attempts: options.maxAttempts ?? STORE_DEFAULTS.maxAttempts, ...(options.backoff ?? STORE_BACKOFF) };
    this.hooks = options.hooks ?? {};
    this.queue = new PQueue({ concurrency: options.concurrency ?? S3_DEFAULTS.concurrency });
    this.uploadBudget = new ByteBudget(options.uploadBufferBytes ?? S3_DEFAULTS.uploadBufferBytes);
    this.ownsClient = !options.client;
    this.client = options.client ?? buildClient(options);
    // A client handed in may carry middleware the caller relies on; only our own gets the direct path.
    this.direct =
      options.client || !(options.directDownloads ?? S3_DEFAULTS.directDownloads)
        ? undefined
        : new DirectGetter({
            client: this.client,
            bucket: this.bucket,
            endpoint: options.endpoint,
            region: regionOf(options),
            forcePathStyle: usesPathStyle(options),
            maxSockets: maxSocketsOf(options),
            connectTimeoutMs: options.connectTimeoutMs ?? STORE_DEFAULTS.connectTimeoutMs,
            requestTimeoutMs: options.requestTimeoutMs ?? STORE_DEFAULTS.requestTimeoutMs,
            bufferBytes: options.downloadBufferBytes ?? S3_DEFAULTS.downloadBufferBytes,
          });
  }

  protected async _get(key: string, options: GetOptions): Promise<GetResult> {
    const Key = this.fullKey(key);
    const range = options.range;
    if (range) {
      // HTTP cannot say "zero bytes"; answer from HEAD so the ETag still comes back.
      if (range.start === range.end) return { body: Buffer.alloc(0), etag: (await this._head(key)).etag };
    }
    const ctx = { op: 'get', key };
    return this.call(ctx, async () => {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key, ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}) }),
      );
      const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array();
      return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), etag: unquoteEtag(res.ETag) };
    });
  }

  protected async _head(key: string): Promise<ObjectInfo> {
    const Key = this.fullKey(key);
    return this.call({ op: 'head', key }, async () => {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      // S3 sends the header only for classes other than STANDARD.
      return { key, size: res.ContentLength ?? 0, etag: unquoteEtag(res.ETag), ...(res.StorageClass ? { storageClass: res.StorageClass } : {}) };
    });
  }

  protected async _put(key: string, data: Buffer, options: PutOptions): Promise<PutResult> {
    const Key = this.fullKey(key);
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
    let attempts = 0;
    const sent = this.call({ op: 'put', key, conditional }, async (n) => {
      attempts = n;
      const res = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: data,
          ContentLength: data.length,
          ...(options.contentType ? { ContentType: options.contentType } : {}),
          ...(options.ifMatch !== undefined ? { IfMatch: quote(options.ifMatch) } : {}),
          ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
          ...this.classParam(options.storageClass),
        }),
      );
      return { etag: unquoteEtag(res.ETag) };
    });
    if (!conditional) return sent;
    try {
      return await sent;
    } catch (err) {
      // An earlier attempt may have landed and made this one lose; see resolveOwnWrite.
      if (attempts > 1 && isCairnError(err, 'CONDITION_FAILED')) {
        const mine = await resolveOwnWrite(() => this._get(key, {}), data);
        if (mine) return mine;
      }
      throw err;
    }
  }

  protected override async _uploadFile(key: string, path: string, options: UploadOptions): Promise<UploadResult> {
    const Key = this.fullKey(key);
    const signal = options.signal;
    const size = await localSize(path);
    const fh = await open(path, 'r').catch((err: unknown) => {
      throw new CairnError('STORE_FAILED', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
    });
    try {
      if (size < this.threshold) {
        // Whole small files go as one buffered PutObject: every attempt resends the buffer,
        // which a half-consumed stream could not do.
        const etag = await this.uploadBudget.with(size, async () => {
          const body = await readExactly(fh, { start: 0, end: size }, path);
          return this.call({ op: 'uploadFile', key, ...(signal ? { signal } : {}) }, async () => {
            const res = await this.client.send(
              withPayloadHash(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: size, ...this.classParam(options.storageClass) }), options.sha256),
              { ...UPLOAD_BODY, ...(signal ? { abortSignal: signal } : {}) },
            );
            return unquoteEtag(res.ETag);
          });
        });
        options.onBytes?.(size);
        return { etag, size };
      }
      const etag = await this.multipartUpload(key, Key, fh, path, size, options);
      return { etag, size };
    } finally {
      await fh.close();
    }
  }

  protected override async _downloadFile(key: string, path: string, options: DownloadOptions): Promise<DownloadResult> {
    const Key = this.fullKey(key);
    const fh = await open(path, 'w').catch((err: unknown) => {
      throw new CairnError(
        (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'STORE_FAILED',
        `cannot write ${path}: ${(err as Error).message}`,
        { cause: err },
      );
    });
    try {
      return await this.parallelDownload(key, Key, fh, options);
    } finally {
      await fh.close();
    }
  }

  protected override async _copy(from: string, to: string, options: CopyOptions): Promise<PutResult> {
    const source = this.fullKey(from);
    const target = this.fullKey(to);
    const ifMatch = options.expect?.etag;
    // S3 refuses to copy an object onto itself unchanged; the result would be the same anyway.
    // A new storage class is a change: that copy rewrites the object in its new class.
    if (from === to && options.storageClass === undefined) {
      const { etag } = await this._head(from);
      if (ifMatch !== undefined && etag !== ifMatch) throw sourceChanged(from, ifMatch, etag);
      return { etag };
    }
    const size = options.size ?? (await this._head(from)).size;
    const CopySource = `${this.bucket}/${encodeKey(source)}`;
    // The store itself refuses to copy a source whose ETag is no longer the recorded one.
    const CopySourceIfMatch = ifMatch === undefined ? undefined : quote(ifMatch);
    const refused = (err: unknown): never => {
      if (CopySourceIfMatch !== undefined && isCairnError(err, 'CONDITION_FAILED')) throw sourceChanged(from, ifMatch!, undefined, err);
      throw err;
    };
    if (size <= this.capabilities.maxSingleCopyBytes) {
      const res = await this.call({ op: 'copy', key: from }, () =>
        // REPLACE with no Tagging: the target starts untagged. The default (COPY) would carry a
        // retired source's cairn-retired tag into a live snapshot, which the bucket's lifecycle
        // would then expire (sweep.ts). A multipart copy below starts a fresh, untagged upload.
        this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource, CopySourceIfMatch, TaggingDirective: 'REPLACE', ...this.classParam(options.storageClass) })),
      ).catch(refused);
      return { etag: unquoteEtag(res.CopyObjectResult?.ETag) };
    }
    const partSize = Math.max(this.copyPartSize, Math.ceil(size / 10_000));
    const etag = await this.multipart('copy', to, target, partRanges(size, partSize), options.storageClass === undefined ? undefined : { storageClass: options.storageClass }, async (UploadId, PartNumber, range, signal) => {
      const res = await this.client.send(
        new UploadPartCopyCommand({
          Bucket: this.bucket,
          Key: target,
          UploadId,
          PartNumber,
          CopySource,
          CopySourceIfMatch,
          CopySourceRange: `bytes=${range.start}-${range.end - 1}`,
        }),
        { abortSignal: signal },
      );
      return res.CopyPartResult?.ETag;
    }).catch(refused);
    return { etag };
  }

  protected async _delete(keys: string[]): Promise<void> {
    const full = keys.map((k) => this.fullKey(k));
    for (let i = 0; i < full.length; i += 1000) {
      const chunk = full.slice(i, i + 1000);
      const res = await this.call({ op: 'delete', key: chunk[0]! }, () =>
        this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }),
        ),
      );
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const first = failed[0]!;
        throw mapS3Error(
          { name: first.Code, Code: first.Code, message: `${failed.length} of ${chunk.length} deletes failed; first: ${first.Key}: ${first.Message}` },
          { op: 'delete', key: this.relative(first.Key ?? '') },
        );
      }
    }
  }

  protected override async _tag(key: string, tags: Record<string, string>): Promise<void> {
    const Key = this.fullKey(key);
    const TagSet = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    // PutObjectTagging replaces the whole set, so a retry after a lost response is harmless.
    await this.call({ op: 'tag', key }, () => this.client.send(new PutObjectTaggingCommand({ Bucket: this.bucket, Key, Tagging: { TagSet } })));
  }

  protected async *_list(prefix: string): AsyncIterable<ObjectInfo> {
    let ContinuationToken: string | undefined;
    do {
      const res = await this.call({ op: 'list', key: prefix }, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.fullPrefix(prefix), ContinuationToken })),
      );
      for (const o of res.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { key: this.relative(o.Key), size: o.Size ?? 0, etag: unquoteEtag(o.ETag) };
      }
      ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  protected override async _listFolders(prefix: string): Promise<string[]> {
    const Prefix = this.fullPrefix(prefix);
    const folders: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const res = await this.call({ op: 'listFolders', key: prefix }, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, Delimiter: '/', ContinuationToken })),
      );
      for (const p of res.CommonPrefixes ?? []) {
        if (p.Prefix) folders.push(p.Prefix.slice(Prefix.length).replace(/\/$/, ''));
      }
      ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return folders.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  protected override async _close(): Promise<void> {
    this.queue.clear();
    this.direct?.close();
    if (this.ownsClient) this.client.destroy();
  }

  /**
   * Ranged GETs written at their offsets. The first response's headers give the size and
   * the ETag to pin; the other parts start right then, while the first body still streams.
   */
  private async parallelDownload(key: string, Key: string, fh: FileHandle, options?: DownloadOptions): Promise<DownloadResult> {
    let sha256: string | undefined;
    const partSize = this.downloadPartSize;
    const controller = new AbortController();
    const signal = options?.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
    setMaxListeners(0, signal);
    let rest: Promise<void> | undefined;
    let restError: unknown;
    const startRest = (total: number, etag: string | undefined) => {
      if (rest || total <= partSize) return;
      rest = runAllOrAbort(signal, partRanges(total, partSize).slice(1), (range, s) => {
        const report = progressAcrossAttempts(options?.onBytes);
        return this.queue.add(() =>
          this.call({ op: 'downloadFile', key, signal: s }, async () => {
            // If-Match: a part of a different object version must not be stitched in.
            const got = await this.getInto(Key, range, etag, s, { fh, offset: range.start, report: report() });
            if (got.written !== range.end - range.start) throw truncated(key, range.end - range.start, got.written);
          }),
        );
      }).then(
        () => undefined,
        (err: unknown) => {
          restError = err;
          controller.abort(err);
        },
      );
    };
    const firstReport = progressAcrossAttempts(options?.onBytes);
    try {
      const total = await this.queue.add(() =>
        this.call({ op: 'downloadFile', key, signal }, async () => {
          const report = firstReport();
          // Hashed as it arrives; only used when this one response turns out to be the whole object.
          const hash = options?.sha256 ? createHash('sha256') : undefined;
          const sink = { fh, offset: 0, report, ...(hash ? { hash } : {}) };
          let got: GotRange;
          try {
            got = await this.getInto(Key, { start: 0, end: partSize }, undefined, signal, sink);
          } catch (err) {
            // An empty object has no byte 0: S3 answers 416. Fetch it plainly instead.
            if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 416) throw err;
            got = await this.getInto(Key, undefined, undefined, signal, sink);
          }
          const size = totalSize(got.contentRange, got.contentLength);
          startRest(size, got.etag);
          const expected = got.contentRange ? Math.min(size, partSize) : size;
          if (got.written !== expected) throw truncated(key, expected, got.written);
          if (hash && size <= partSize) sha256 = hash.digest('hex');
          return size;
        }),
      );
      await rest;
      if (restError !== undefined) throw restError;
      return { size: total, ...(sha256 ? { sha256 } : {}) };
    } catch (err) {
      // Whichever failed first is the cause; anything after is our own abort echoing back.
      const cause = restError !== undefined ? restError : err;
      controller.abort(cause);
      // Parts write into `fh`; they must all have stopped before the caller closes it.
      await rest;
      throw mapS3Error(cause, { op: 'downloadFile', key, ...(options?.signal ? { signal: options.signal } : {}) });
    }
  }

  private async multipartUpload(key: string, Key: string, fh: FileHandle, path: string, size: number, options?: TransferProgress): Promise<string> {
    const partSize = Math.max(this.partSize, Math.ceil(size / 10_000 / MiB) * MiB);
    return this.multipart('uploadFile', key, Key, partRanges(size, partSize), options, async (UploadId, PartNumber, range, signal, report) =>
      this.uploadBudget.with(range.end - range.start, async () => {
        const Body = await readExactly(fh, range, path);
        const res = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key, UploadId, PartNumber, Body, ContentLength: Body.length }),
          { ...UPLOAD_BODY, abortSignal: signal },
        );
        report(Body.length);
        return res.ETag;
      }),
    );
  }

  /** Create, run every part through the queue, complete; abort the upload on any failure. */
  private async multipart(
    op: 'uploadFile' | 'copy',
    key: string,
    Key: string,
    ranges: Range[],
    options: (TransferProgress & ClassedWrite) | undefined,
    part: (uploadId: string, partNumber: number, range: Range, signal: AbortSignal, report: (n: number) => void) => Promise<string | undefined>,
  ): Promise<string> {
    const signal = options?.signal;
    const ctx: S3ErrorContext = { op, key, ...(signal ? { signal } : {}) };
    const created = await this.call(ctx, () =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key, ...this.classParam(options?.storageClass) }), signal ? { abortSignal: signal } : {}),
    );
    const UploadId = created.UploadId;
    if (!UploadId) throw new CairnError('STORE_FAILED', `multipart ${key}: no UploadId returned`);
    try {
      // Each part is a request of its own, retried alone; its progress counts once.
      const etags = await runAllOrAbort(signal, ranges, (range, s, i) => {
        const report = progressAcrossAttempts(options?.onBytes);
        return this.queue.add(() => this.call({ op, key, signal: s }, () => part(UploadId, i + 1, range, s, report())));
      });
      const Parts = etags.map((ETag, i) => ({ PartNumber: i + 1, ETag }));
      const done = await this.call(ctx, () =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, MultipartUpload: { Parts } }), signal ? { abortSignal: signal } : {}),
      );
      return unquoteEtag(done.ETag);
    } catch (err) {
      // Best effort, one attempt (bounded by the client's timeouts): an abandoned upload
      // only costs storage until a lifecycle rule clears it.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId })).catch(() => undefined);
      throw mapS3Error(err, ctx);
    }
  }

  /**
   * One GET of `range` (the whole object without one) written at `sink.offset`: the direct
   * path when it can take the answer (s3-direct-get.ts), the SDK for anything else, so error
   * answers are mapped in one place.
   */
  private async getInto(Key: string, range: Range | undefined, ifMatch: string | undefined, signal: AbortSignal, sink: DirectGetSink): Promise<GotRange> {
    if (this.direct) {
      const got = await this.direct.get({ key: Key, ...(range ? { range } : {}), ...(ifMatch ? { ifMatch } : {}), signal }, sink);
      if (got) return got;
    }
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: this.bucket, Key, ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}), ...(ifMatch ? { IfMatch: ifMatch } : {}) }),
      { abortSignal: signal },
    );
    const written = await writeAt(sink.fh, res.Body as Readable | undefined, sink.offset, sink.report, sink.hash);
    return { etag: res.ETag, contentRange: res.ContentRange, contentLength: res.ContentLength ?? written, written };
  }

  /** One request, retried alone (the only retry layer for it); failures as CairnErrors. */
  private call<T>(ctx: S3ErrorContext, fn: (attempt: number) => Promise<T>): Promise<T> {
    return retryRequest(this.policy, this.hooks, ctx, fn, (err) => mapS3Error(err, ctx));
  }

  /** The write's own class (a storage class's s3StorageClass), else the store-wide one. */
  private classParam(own?: string): { StorageClass?: StorageClass } {
    const storageClass = (own ?? this.storageClass) as StorageClass | undefined;
    return storageClass ? { StorageClass: storageClass } : {};
  }

  /** `key` was validated by the public method (AbstractObjectStore). */
  private fullKey(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private fullPrefix(prefix: string): string {
    return this.prefix ? `${this.prefix}/${prefix}` : prefix;
  }

  private relative(fullKey: string): string {
    return this.prefix && fullKey.startsWith(`${this.prefix}/`) ? fullKey.slice(this.prefix.length + 1) : fullKey;
  }
}

function sourceChanged(from: string, expected: string, actual: string | undefined, cause?: unknown): CairnError {
  return new CairnError('CORRUPT', `copy ${from}: the object is no longer the one recorded (ETag ${actual ?? 'differs'}, expected ${unquoteEtag(expected)}); not copied`, {
    ...(cause === undefined ? {} : { cause }),
    details: { key: from, expectedEtag: unquoteEtag(expected), ...(actual ? { actualEtag: actual } : {}) },
  });
}

function quote(etag: string): string {
  return `"${unquoteEtag(etag)}"`;
}

/** CopySource is a URL path: encode each segment, keep the slashes. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function totalSize(contentRange: string | undefined, contentLength: number | undefined): number {
  const m = contentRange ? /\/(\d+)\s*$/.exec(contentRange) : null;
  return m ? Number(m[1]) : (contentLength ?? 0);
}

/**
 * Signs a body with the sha256 the caller already has (UploadOptions.sha256): SigV4 signs
 * the payload hash, and the SDK would otherwise read the whole body once more to compute it
 * (it does for every Buffer body). S3 checks the body against it and refuses a mismatch.
 */
function withPayloadHash<C extends PutObjectCommand>(command: C, sha256: string | undefined): C {
  if (sha256 === undefined) return command;
  command.middlewareStack.add(
    (next) => (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 'cairnKnownPayloadHash' },
  );
  return command;
}

type GotRange = Pick<DirectGetResult, 'etag' | 'contentRange' | 'contentLength' | 'written'>;

function truncated(key: string, expected: number, got: number): CairnError {
  return new CairnError('STORE_UNAVAILABLE', `download ${key}: expected ${expected} bytes, got ${got}`);
}
