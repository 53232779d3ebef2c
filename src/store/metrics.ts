import { Counter, Histogram, type Registry } from 'prom-client';
import { isCairnError } from '../core/errors.js';
import type { CopyOptions, ObjectInfo, ObjectStore, PutOptions, StoreCapabilities, TransferProgress, DownloadOptions, DownloadResult } from './types.js';

export interface StoreMetricsSnapshot {
  /** op -> outcome ('ok' or an error code such as 'NOT_FOUND') -> count. */
  requests: Record<string, Record<string, number>>;
  /** op -> retries made below this wrapper (fed by withRetry's onRetry). */
  retries: Record<string, number>;
  uploadedBytes: number;
  downloadedBytes: number;
  /** Bytes duplicated inside the store; counted when the caller passes `copy(..., { size })`. */
  copiedBytes: number;
}

export interface MeteredObjectStore extends ObjectStore {
  /** A plain copy of the counters (for tests, reports and checkpoint stats). */
  snapshot(): StoreMetricsSnapshot;
  /** Counts one retry of `op`; wire withRetry's onRetry here. */
  recordRetry(op: string): void;
}

interface PromMetrics {
  requests: Counter<'backend' | 'op' | 'outcome'>;
  retries: Counter<'backend' | 'op'>;
  uploaded: Counter<'backend'>;
  downloaded: Counter<'backend'>;
  copied: Counter<'backend'>;
  duration: Histogram<'backend' | 'op'>;
}

/**
 * Counts logical operations by outcome and the bytes each moved. Placed outside the retry
 * wrapper, one call is one request here however many attempts it took; retries are
 * counted separately. With a prom-client Registry the same figures are exported as
 * `cairn_store_*`; several stores may share one registry (labelled by backend name).
 */
export function withMetrics(store: ObjectStore, registry?: Registry): MeteredObjectStore {
  return new MeteredStore(store, registry ? promMetrics(registry) : undefined);
}

class MeteredStore implements MeteredObjectStore {
  private readonly requests = new Map<string, Map<string, number>>();
  private readonly retries = new Map<string, number>();
  private uploadedBytes = 0;
  private downloadedBytes = 0;
  private copiedBytes = 0;

  constructor(
    private readonly inner: ObjectStore,
    private readonly prom: PromMetrics | undefined,
  ) {}

  get capabilities(): StoreCapabilities {
    return this.inner.capabilities;
  }

  get url(): string {
    return this.inner.url;
  }

  private get backend(): string {
    return this.inner.capabilities.name;
  }

  async get(key: string, options?: { range?: { start: number; end: number } }): Promise<{ body: Buffer; etag: string }> {
    const res = await this.measure('get', () => this.inner.get(key, options));
    this.addDownloaded(res.body.length);
    return res;
  }

  head(key: string): Promise<ObjectInfo> {
    return this.measure('head', () => this.inner.head(key));
  }

  async put(key: string, body: Buffer | string, options?: PutOptions): Promise<{ etag: string }> {
    const res = await this.measure('put', () => this.inner.put(key, body, options));
    this.addUploaded(typeof body === 'string' ? Buffer.byteLength(body) : body.length);
    return res;
  }

  async uploadFile(key: string, path: string, options?: TransferProgress): Promise<{ etag: string; size: number }> {
    const res = await this.measure('uploadFile', () => this.inner.uploadFile(key, path, options));
    this.addUploaded(res.size);
    return res;
  }

  async downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    const res = await this.measure('downloadFile', () => this.inner.downloadFile(key, path, options));
    this.addDownloaded(res.size);
    return res;
  }

  async copy(from: string, to: string, options?: CopyOptions): Promise<{ etag: string }> {
    const res = await this.measure('copy', () => this.inner.copy(from, to, options));
    const size = options?.size ?? 0;
    this.copiedBytes += size;
    this.prom?.copied.inc({ backend: this.backend }, size);
    return res;
  }

  delete(keys: string[]): Promise<void> {
    return this.measure('delete', () => this.inner.delete(keys));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const started = performance.now();
    try {
      yield* this.inner.list(prefix);
      this.record('list', 'ok', started);
    } catch (err) {
      this.record('list', outcomeOf(err), started);
      throw err;
    }
  }

  listFolders(prefix: string): Promise<string[]> {
    return this.measure('listFolders', () => this.inner.listFolders(prefix));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  recordRetry(op: string): void {
    this.retries.set(op, (this.retries.get(op) ?? 0) + 1);
    this.prom?.retries.inc({ backend: this.backend, op });
  }

  snapshot(): StoreMetricsSnapshot {
    const requests: Record<string, Record<string, number>> = {};
    for (const [op, outcomes] of this.requests) requests[op] = Object.fromEntries(outcomes);
    return {
      requests,
      retries: Object.fromEntries(this.retries),
      uploadedBytes: this.uploadedBytes,
      downloadedBytes: this.downloadedBytes,
      copiedBytes: this.copiedBytes,
    };
  }

  private async measure<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      this.record(op, 'ok', started);
      return result;
    } catch (err) {
      this.record(op, outcomeOf(err), started);
      throw err;
    }
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
  const duration =
    (registry.getSingleMetric('cairn_store_request_duration_seconds') as Histogram<'backend' | 'op'> | undefined) ??
    new Histogram<'backend' | 'op'>({
      name: 'cairn_store_request_duration_seconds',
      help: 'Object store operation latency (including retries)',
      labelNames: ['backend', 'op'],
      buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60],
      registers: [registry],
    });
  return {
    requests: counter('cairn_store_requests_total', 'Object store operations by outcome', ['backend', 'op', 'outcome']),
    retries: counter('cairn_store_retries_total', 'Object store operation retries', ['backend', 'op']),
    uploaded: counter('cairn_store_uploaded_bytes_total', 'Bytes sent to the object store', ['backend']),
    downloaded: counter('cairn_store_downloaded_bytes_total', 'Bytes read from the object store', ['backend']),
    copied: counter('cairn_store_copied_bytes_total', 'Bytes duplicated inside the object store (server-side copy)', ['backend']),
    duration,
  };
}
