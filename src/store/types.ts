/**
 * The object store abstraction. Keys are relative to the store's root (a folder, or an S3
 * bucket plus prefix) and use '/' as separator; they never start with '/' and never contain
 * '..' segments (callers build them from validated names). Every failure is a CairnError:
 * NOT_FOUND, CONDITION_FAILED, STORE_UNAVAILABLE (retryable) or STORE_FAILED.
 */
export interface StoreCapabilities {
  /** Backend name for logs and metrics: 'fs' or 's3'. */
  readonly name: string;
  /** `copy` happens inside the store (no bytes pass through this process). */
  readonly serverSideCopy: boolean;
  /** `put` honours ifMatch / ifNoneMatch atomically (between processes). */
  readonly conditionalWrite: boolean;
  /** `get` honours byte ranges. */
  readonly rangedRead: boolean;
  /** Largest object `copy` moves in one request; above it the backend copies in parts. */
  readonly maxSingleCopyBytes: number;
  /**
   * What `copy` can hold the source to (CopyOptions.expect): 'etag' — the store refuses the
   * copy unless the source still has the ETag recorded when it was written (S3's
   * x-amz-copy-source-if-match); 'sha256' — the bytes are hashed on their way and the copy
   * is refused unless they hash to the recorded sha256 (the filesystem store).
   */
  readonly copyVerifies: 'etag' | 'sha256';
  /** Writes honour ClassedWrite.storageClass and `head` reports it (S3); else classes only name stores. */
  readonly storageClasses: boolean;
  /**
   * `tag` sets object tags (S3), which bucket lifecycle rules can match; without it `tag`
   * throws and callers that would tag delete instead (snapshots.retire, sweep.ts).
   */
  readonly tagging: boolean;
}

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
  /** From `head` on a store with classes (capabilities.storageClasses): the object's S3 storage class; absent for STANDARD. */
  storageClass?: string;
}

/** Writes that create an object may give it an S3 storage class; stores without classes ignore it. */
export interface ClassedWrite {
  /** e.g. STANDARD, REDUCED_REDUNDANCY; absent: the store's own default. */
  storageClass?: string;
}

/** A byte range: `start` inclusive, `end` exclusive (clamped to the object's size). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface GetOptions {
  range?: ByteRange;
}

export interface GetResult {
  body: Buffer;
  etag: string;
}

/** What a write that creates an object returns: its new ETag. */
export interface PutResult {
  etag: string;
}

export interface UploadResult extends PutResult {
  size: number;
}

export interface PutOptions extends ClassedWrite {
  /** Write only if the current object's ETag equals this (optimistic concurrency). */
  ifMatch?: string;
  /** '*' = write only if no object exists at the key. */
  ifNoneMatch?: '*';
  contentType?: string;
}

export interface CopyOptions extends ClassedWrite {
  /** The source's size when known, which spares a HEAD (and decides single vs part copy). */
  size?: number;
  /**
   * Copy only bytes that are still what was recorded. A source that no longer matches is
   * CORRUPT (details.key = the source), and nothing is written at the target: a damaged
   * object must never be duplicated into a new snapshot.
   */
  expect?: { etag?: string; sha256?: string };
}

export interface TransferProgress {
  /** Called with the number of bytes moved since the previous call. */
  onBytes?: (delta: number) => void;
  signal?: AbortSignal;
}

export interface UploadOptions extends TransferProgress, ClassedWrite {
  /**
   * The file's sha256 (hex) when the caller already has it. A backend that signs or checks
   * the payload uses it instead of reading the file once more (S3 over plain HTTP signs the
   * payload hash), and the server then refuses bytes that do not match it (CORRUPT).
   */
  sha256?: string;
}

export interface DownloadOptions extends TransferProgress {
  /**
   * Also return the sha256 of the bytes, computed while they arrive, where the backend can
   * (a single-request download); callers verify with it instead of re-reading the file.
   */
  sha256?: boolean;
}

export interface DownloadResult {
  size: number;
  /** Present when requested and the backend could compute it in-stream. */
  sha256?: string;
}

export interface ObjectStore {
  readonly capabilities: StoreCapabilities;
  /** e.g. `file:///abs/root` or `s3://bucket/prefix`, for messages. */
  readonly url: string;

  /** Whole object (or `range`, inclusive start, exclusive end) into memory. */
  get(key: string, options?: GetOptions): Promise<GetResult>;
  /** Metadata only; NOT_FOUND when absent. */
  head(key: string): Promise<ObjectInfo>;
  /** Small objects from memory, with optional preconditions; returns the new ETag. */
  put(key: string, body: Buffer | string, options?: PutOptions): Promise<PutResult>;
  /** A local file to the store, streamed; large files in parallel parts. */
  uploadFile(key: string, path: string, options?: UploadOptions): Promise<UploadResult>;
  /** An object to a local file, streamed (the file is created or truncated). */
  downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult>;
  /**
   * Server-side copy where the backend can; never modifies `from`. Returns the target's ETag.
   * The target starts without tags: a retired object copied into a live snapshot must not
   * carry the tag that lets the bucket's lifecycle expire it.
   */
  copy(from: string, to: string, options?: CopyOptions): Promise<PutResult>;
  /** Deletes; absent keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /**
   * Replaces the object's whole tag set with `tags` (capabilities.tagging); NOT_FOUND when
   * the object is absent, STORE_FAILED on a store without tags.
   */
  tag(key: string, tags: Record<string, string>): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** The distinct next path segments below `prefix` (which ends with '/' or is ''). */
  listFolders(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}
