import { Counter, Histogram, type Registry } from 'prom-client';
import { isCairnError } from '../core/errors.js';
import { WrappedObjectStore, type StoreCall } from './forwarding.js';
import type { CopyOptions, DownloadOptions, DownloadResult, GetOptions, GetResult, ObjectInfo, ObjectStore, PutOptions, PutResult, UploadOptions, UploadResult } from './types.js';

export interface StoreMetricsSnapshot {
  /** op -> outcome ('ok' or an error code such as 'NOT_FOUND') -> count. */
  requests: Record<string, Record<string, number>>;
  /** op -> retries made below this wrapper (fed by the retry owner's onRetry). */
  retries: Record<string, number>;
  /**
   * op -> requests settled below this wrapper and the attempts they took in all (fed by the
   * retry owner's onAttempts). On S3 a request is one HTTP request (each part of a transfer
   * is its own); on the filesystem store it is one operation.
   */
  attempts: Record<string, { requests: number; attempts: number }>;
  uploadedBytes: number;
  downloadedBytes: number;
  /** Bytes duplicated inside the store; counted when the caller passes `copy(..., { size })`. */
  copiedBytes: number;
}

export interface MeteredObjectStore extends ObjectStore {
  /** A plain copy of the counters (for tests, reports and checkpoint stats). */
  snapshot(): StoreMetricsSnapshot;
  /** Counts one retry of `op`; wire the retry owner's onRetry here. */
  recordRetry(op: string): void;
  /** Records the attempts one request of `op` took; wire the retry owner's onAttempts here. */
  recordAttempts(op: string, attempts: number): void;
}

interface PromMetrics {
  requests: Counter<'backend' | 'op' | 'outcome'>;
  retries: Counter<'backend' | 'op'>;
  attempts: Histogram<'backend' | 'op'>;
  uploaded: Counter<'backend'>;
  downloaded: Counter<'backend'>;
  copied: Counter<'backend'>;
  duration: Histogram<'backend' | 'op'>;
}

/**
 * Counts logical operations by outcome and the bytes each moved. Placed outside the retry
 * owner (the S3 backend, or withRetry over the filesystem store), one call is one operation
 * here however many requests and attempts it took; retries and attempts per request are
 * reported by the retry owner through recordRetry / recordAttempts. With a prom-client
 * Registry the same figures are exported as `cairn_store_*`; several stores may share one
 * registry (labelled by backend name).
 */
export function withMetrics(store: ObjectStore, registry?: Registry): MeteredObjectStore {
  return new MeteredStore(store, registry ? promMetrics(registry) : undefined);
}

class MeteredStore extends WrappedObjectStore implements MeteredObjectStore {
  private readonly requests = new Map<string, Map<string, number>>();
  private readonly retries = new Map<string, number>();
  private readonly attempts = new Map<string, { requests: number; attempts: number }>();
  private uploadedBytes = 0;
  private downloadedBytes = 0;
  private copiedBytes = 0;

  constructor(
    inner: ObjectStore,
    private readonly prom: PromMetrics | undefined,
  ) {
    super(inner);
  }

  private get backend(): string {
    return this.inner.capabilities.name;
  }

  /** One call, one operation counted by its final outcome, however many attempts it took below. */
  protected override async around<T>(call: StoreCall, run: (attempt: number) => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run(1);
      this.record(call.op, 'ok', started);
      return result;
    } catch (err) {
      this.record(call.op, outcomeOf(err), started);
      throw err;
    }
  }

  override async get(key: string, options?: GetOptions): Promise<GetResult> {
    const res = await super.get(key, options);
    this.addDownloaded(res.body.length);
    return res;
  }

  override async put(key: string, body: Buffer | string, options?: PutOptions): Promise<PutResult> {
    const res = await super.put(key, body, options);
    this.addUploaded(typeof body === 'string' ? Buffer.byteLength(body) : body.length);
    return res;
  }

  override async uploadFile(key: string, path: string, options?: UploadOptions): Promise<UploadResult> {
    const res = await super.uploadFile(key, path, options);
    this.addUploaded(res.size);
    return res;
  }

  override async downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    const res = await super.downloadFile(key, path, options);
    this.addDownloaded(res.size);
    return res;
  }

  override async copy(from: string, to: string, options?: CopyOptions): Promise<PutResult> {
    const res = await super.copy(from, to, options);
    const size = options?.size ?? 0;
    this.copiedBytes += size;
    this.prom?.copied.inc({ backend: this.backend }, size);
    return res;
  }

  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const started = performance.now();
    try {
      yield* this.inner.list(prefix);
      this.record('list', 'ok', started);
    } catch (err) {
      this.record('list', outcomeOf(err), started);
      throw err;
    }
  }

  recordRetry(op: string): void {
    this.retries.set(op, (this.retries.get(op) ?? 0) + 1);
    this.prom?.retries.inc({ backend: this.backend, op });
  }

  recordAttempts(op: string, attempts: number): void {
    const seen = this.attempts.get(op) ?? { requests: 0, attempts: 0 };
    this.attempts.set(op, { requests: seen.requests + 1, attempts: seen.attempts + attempts });
    this.prom?.attempts.observe({ backend: this.backend, op }, attempts);
  }

  snapshot(): StoreMetricsSnapshot {
    const requests: Record<string, Record<string, number>> = {};
    for (const [op, outcomes] of this.requests) requests[op] = Object.fromEntries(outcomes);
    return {
      requests,
      retries: Object.fromEntries(this.retries),
      attempts: Object.fromEntries([...this.attempts].map(([op, a]) => [op, { ...a }])),
      uploadedBytes: this.uploadedBytes,
      downloadedBytes: this.downloadedBytes,
      copiedBytes: this.copiedBytes,
    };
  }

  private record(op: string, outcome: string, started: number): void {
    let outcomes = this.requests.get(op);
    if (!outcomes) this.requests.set(op, (outcomes = new Map()));
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    this.prom?.requests.inc({ backend: this.backend, op, outcome });
    this.prom?.duration.observe({ backend: this.backend, op }, (performance.now() - started) / 1000);
  }

  private addUploaded(n: number): void {
    this.uploadedBytes += n;
    this.prom?.uploaded.inc({ backend: this.backend }, n);
  }

  private addDownloaded(n: number): void {
    this.downloadedBytes += n;
    this.prom?.downloaded.inc({ backend: this.backend }, n);
  }
}

function outcomeOf(err: unknown): string {
  return isCairnError(err) ? err.code : 'INTERNAL';
}

/** Reuses metrics already on the registry, so two stores (or two wrappers) can share it. */
function promMetrics(registry: Registry): PromMetrics {
  const counter = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
    (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter<L>({ name, help, labelNames, registers: [registry] });
  const histogram = (name: string, help: string, buckets: number[]): Histogram<'backend' | 'op'> =>
    (registry.getSingleMetric(name) as Histogram<'backend' | 'op'> | undefined) ??
    new Histogram<'backend' | 'op'>({ name, help, labelNames: ['backend', 'op'], buckets, registers: [registry] });
  const duration = histogram(
    'cairn_store_request_duration_seconds',
    'Object store operation latency (including retries)',
    [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60],
  );
  return {
    requests: counter('cairn_store_requests_total', 'Object store operations by outcome', ['backend', 'op', 'outcome']),
    retries: counter('cairn_store_retries_total', 'Object store request retries (attempts after the first)', ['backend', 'op']),
    attempts: histogram('cairn_store_request_attempts', 'Attempts per object store request, the first included', [1, 2, 3, 4, 5, 6, 8, 10, 20]),
    uploaded: counter('cairn_store_uploaded_bytes_total', 'Bytes sent to the object store', ['backend']),
    downloaded: counter('cairn_store_downloaded_bytes_total', 'Bytes read from the object store', ['backend']),
    copied: counter('cairn_store_copied_bytes_total', 'Bytes duplicated inside the object store (server-side copy)', ['backend']),
    duration,
  };
}
