import { open } from 'node:fs/promises';
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCopyCommand,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import PQueue from 'p-queue';
import { S3_DEFAULTS, STORE_DEFAULTS } from '../../core/defaults.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import { AbstractObjectStore } from '../base.js';
import { unquoteEtag, validateKey } from '../keys.js';
import { mapS3Error } from './errors.js';
import { buildClient, maxSocketsOf, regionOf, usesPathStyle } from './client.js';
import { s3Capabilities, s3Url, type S3ObjectStoreOptions } from './options.js';
import { resolveOwnWrite, STORE_BACKOFF, type RetryHooks, type RetryPolicy } from '../request-retry.js';
import { ByteBudget, localSize, partRanges, readExactly } from '../transfer.js';
import { DirectGetter } from './direct-get.js';
import { S3Transfers, UPLOAD_BODY } from './transfers.js';
import type { CopyOptions, DownloadOptions, DownloadResult, GetOptions, GetResult, ObjectInfo, PutOptions, PutResult, StoreCapabilities, UploadOptions, UploadResult } from '../types.js';

export { s3OptionsFromConfig, type S3ObjectStoreOptions } from './client.js';

const MiB = 1024 * 1024;


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
  /** Requests, retries and the bulk paths (parallel downloads, multipart writes): transfers.ts. */
  private readonly t: S3Transfers;

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
    this.t = new S3Transfers({
      client: this.client,
      bucket: this.bucket,
      queue: this.queue,
      policy: this.policy,
      hooks: this.hooks,
      storageClass: this.storageClass,
      direct: this.direct,
      uploadBudget: this.uploadBudget,
      partSize: this.partSize,
      downloadPartSize: this.downloadPartSize,
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
    return this.t.call(ctx, async () => {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key, ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}) }),
      );
      const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array();
      return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), etag: unquoteEtag(res.ETag) };
    });
  }

  protected async _head(key: string): Promise<ObjectInfo> {
    const Key = this.fullKey(key);
    return this.t.call({ op: 'head', key }, async () => {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      // S3 sends the header only for classes other than STANDARD.
      return { key, size: res.ContentLength ?? 0, etag: unquoteEtag(res.ETag), ...(res.StorageClass ? { storageClass: res.StorageClass } : {}) };
    });
  }

  protected async _put(key: string, data: Buffer, options: PutOptions): Promise<PutResult> {
    const Key = this.fullKey(key);
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
    let attempts = 0;
    const sent = this.t.call({ op: 'put', key, conditional }, async (n) => {
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
          ...this.t.classParam(options.storageClass),
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
          return this.t.call({ op: 'uploadFile', key, ...(signal ? { signal } : {}) }, async () => {
            const res = await this.client.send(
              withPayloadHash(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: size, ...this.t.classParam(options.storageClass) }), options.sha256),
              { ...UPLOAD_BODY, ...(signal ? { abortSignal: signal } : {}) },
            );
            return unquoteEtag(res.ETag);
          });
        });
        options.onBytes?.(size);
        return { etag, size };
      }
      const etag = await this.t.multipartUpload(key, Key, fh, path, size, options);
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
      return await this.t.parallelDownload(key, Key, fh, options);
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
      const res = await this.t.call({ op: 'copy', key: from }, () =>
        // REPLACE with no Tagging: the target starts untagged. The default (COPY) would carry a
        // retired source's cairn-retired tag into a live snapshot, which the bucket's lifecycle
        // would then expire (sweep.ts). A multipart copy below starts a fresh, untagged upload.
        this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource, CopySourceIfMatch, TaggingDirective: 'REPLACE', ...this.t.classParam(options.storageClass) })),
      ).catch(refused);
      return { etag: unquoteEtag(res.CopyObjectResult?.ETag) };
    }
    const partSize = Math.max(this.copyPartSize, Math.ceil(size / 10_000));
    const etag = await this.t.multipart('copy', to, target, partRanges(size, partSize), options.storageClass === undefined ? undefined : { storageClass: options.storageClass }, async (UploadId, PartNumber, range, signal) => {
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
      const res = await this.t.call({ op: 'delete', key: chunk[0]! }, () =>
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
    await this.t.call({ op: 'tag', key }, () => this.client.send(new PutObjectTaggingCommand({ Bucket: this.bucket, Key, Tagging: { TagSet } })));
  }

  protected async *_list(prefix: string): AsyncIterable<ObjectInfo> {
    let ContinuationToken: string | undefined;
    do {
      const res = await this.t.call({ op: 'list', key: prefix }, () =>
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
      const res = await this.t.call({ op: 'listFolders', key: prefix }, () =>
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


