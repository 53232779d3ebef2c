import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, UploadPartCommand, type S3Client, type StorageClass } from '@aws-sdk/client-s3';
import type PQueue from 'p-queue';
import { CairnError } from '../../core/errors.js';
import { unquoteEtag } from '../keys.js';
import { progressAcrossAttempts, retryRequest, type RetryHooks, type RetryPolicy } from '../request-retry.js';
import { partRanges, readExactly, runAllOrAbort, writeAt, type ByteBudget, type Range } from '../transfer.js';
import type { ClassedWrite, DownloadOptions, DownloadResult, TransferProgress } from '../types.js';
import type { DirectGetResult, DirectGetSink, DirectGetter } from './direct-get.js';
import { mapS3Error, type S3ErrorContext } from './errors.js';

const MiB = 1024 * 1024;

/**
 * Send options for requests that carry a file's bytes (PutObject from uploadFile, UploadPart):
 * no deadline for the response headers, which would count the upload time of a large body on
 * a slow link. The socket inactivity timeout (requestTimeoutMs) still fails a silent server.
 */
export const UPLOAD_BODY = { requestTimeout: 0 } as const;

/** What the bulk paths share with the store that owns them. */
export interface S3TransferContext {
  client: S3Client;
  bucket: string;
  /** Bounds the requests in flight across every transfer of the store. */
  queue: PQueue;
  policy: RetryPolicy;
  hooks: RetryHooks;
  storageClass: StorageClass | undefined;
  direct: DirectGetter | undefined;
  uploadBudget: ByteBudget;
  partSize: number;
  downloadPartSize: number;
}

/**
 * The requests of the S3 backend (store.ts): each one retried alone through `call`, the one
 * retry layer for it, and the bulk paths where the time goes — downloads as parallel ranged
 * GETs written straight to their offsets, uploads and large copies as multipart uploads whose
 * parts share the store's request queue.
 */
export class S3Transfers {
  constructor(private readonly c: S3TransferContext) {}

  /**
   * Ranged GETs written at their offsets. The first response's headers give the size and
   * the ETag to pin; the other parts start right then, while the first body still streams.
   */
  async parallelDownload(key: string, Key: string, fh: FileHandle, options?: DownloadOptions): Promise<DownloadResult> {
    let sha256: string | undefined;
    const partSize = this.c.downloadPartSize;
    const controller = new AbortController();
    const signal = options?.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
    setMaxListeners(0, signal);
    let rest: Promise<void> | undefined;
    let restError: unknown;
    const startRest = (total: number, etag: string | undefined) => {
      if (rest || total <= partSize) return;
      rest = runAllOrAbort(signal, partRanges(total, partSize).slice(1), (range, s) => {
        const report = progressAcrossAttempts(options?.onBytes);
        return this.c.queue.add(() =>
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
      const total = await this.c.queue.add(() =>
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

  async multipartUpload(key: string, Key: string, fh: FileHandle, path: string, size: number, options?: TransferProgress): Promise<string> {
    const partSize = Math.max(this.c.partSize, Math.ceil(size / 10_000 / MiB) * MiB);
    return this.multipart('uploadFile', key, Key, partRanges(size, partSize), options, async (UploadId, PartNumber, range, signal, report) =>
      this.c.uploadBudget.with(range.end - range.start, async () => {
        const Body = await readExactly(fh, range, path);
        const res = await this.c.client.send(
          new UploadPartCommand({ Bucket: this.c.bucket, Key, UploadId, PartNumber, Body, ContentLength: Body.length }),
          { ...UPLOAD_BODY, abortSignal: signal },
        );
        report(Body.length);
        return res.ETag;
      }),
    );
  }

  /** Create, run every part through the queue, complete; abort the upload on any failure. */
  async multipart(
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
      this.c.client.send(new CreateMultipartUploadCommand({ Bucket: this.c.bucket, Key, ...this.classParam(options?.storageClass) }), signal ? { abortSignal: signal } : {}),
    );
    const UploadId = created.UploadId;
    if (!UploadId) throw new CairnError('STORE_FAILED', `multipart ${key}: no UploadId returned`);
    try {
      // Each part is a request of its own, retried alone; its progress counts once.
      const etags = await runAllOrAbort(signal, ranges, (range, s, i) => {
        const report = progressAcrossAttempts(options?.onBytes);
        return this.c.queue.add(() => this.call({ op, key, signal: s }, () => part(UploadId, i + 1, range, s, report())));
      });
      const Parts = etags.map((ETag, i) => ({ PartNumber: i + 1, ETag }));
      const done = await this.call(ctx, () =>
        this.c.client.send(new CompleteMultipartUploadCommand({ Bucket: this.c.bucket, Key, UploadId, MultipartUpload: { Parts } }), signal ? { abortSignal: signal } : {}),
      );
      return unquoteEtag(done.ETag);
    } catch (err) {
      // Best effort, one attempt (bounded by the client's timeouts): an abandoned upload
      // only costs storage until a lifecycle rule clears it.
      await this.c.client.send(new AbortMultipartUploadCommand({ Bucket: this.c.bucket, Key, UploadId })).catch(() => undefined);
      throw mapS3Error(err, ctx);
    }
  }

  /**
   * One GET of `range` (the whole object without one) written at `sink.offset`: the direct
   * path when it can take the answer (s3-direct-get.ts), the SDK for anything else, so error
   * answers are mapped in one place.
   */
  private async getInto(Key: string, range: Range | undefined, ifMatch: string | undefined, signal: AbortSignal, sink: DirectGetSink): Promise<GotRange> {
    if (this.c.direct) {
      const got = await this.c.direct.get({ key: Key, ...(range ? { range } : {}), ...(ifMatch ? { ifMatch } : {}), signal }, sink);
      if (got) return got;
    }
    const res = await this.c.client.send(
      new GetObjectCommand({ Bucket: this.c.bucket, Key, ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}), ...(ifMatch ? { IfMatch: ifMatch } : {}) }),
      { abortSignal: signal },
    );
    const written = await writeAt(sink.fh, res.Body as Readable | undefined, sink.offset, sink.report, sink.hash);
    return { etag: res.ETag, contentRange: res.ContentRange, contentLength: res.ContentLength ?? written, written };
  }

  /** One request, retried alone (the only retry layer for it); failures as CairnErrors. */
  call<T>(ctx: S3ErrorContext, fn: (attempt: number) => Promise<T>): Promise<T> {
    return retryRequest(this.c.policy, this.c.hooks, ctx, fn, (err) => mapS3Error(err, ctx));
  }

  /** The write's own class (a storage class's s3StorageClass), else the store-wide one. */
  classParam(own?: string): { StorageClass?: StorageClass } {
    const storageClass = (own ?? this.c.storageClass) as StorageClass | undefined;
    return storageClass ? { StorageClass: storageClass } : {};
  }
}

type GotRange = Pick<DirectGetResult, 'etag' | 'contentRange' | 'contentLength' | 'written'>;

function totalSize(contentRange: string | undefined, contentLength: number | undefined): number {
  const m = contentRange ? /\/(\d+)\s*$/.exec(contentRange) : null;
  return m ? Number(m[1]) : (contentLength ?? 0);
}

function truncated(key: string, expected: number, got: number): CairnError {
  return new CairnError('STORE_UNAVAILABLE', `download ${key}: expected ${expected} bytes, got ${got}`);
}
