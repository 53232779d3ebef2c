import type { CopyOptions, ObjectInfo, ObjectStore, PutOptions, TransferProgress, UploadOptions } from '../../src/store/types.js';

/**
 * Counts every request made through an ObjectStore (list counts once per call, however many
 * objects it yields), optionally delaying the transfers that make a checkpoint slow. A thin
 * wrapper over a real store, not a stand-in for one.
 */
export class CountingStore implements ObjectStore {
  readonly counts: Record<string, number> = {};
  /** Every request in call order: `op key`. */
  readonly requests: string[] = [];

  constructor(
    readonly inner: ObjectStore,
    private readonly options: { transferDelayMs?: number } = {},
  ) {}

  get capabilities() {
    return this.inner.capabilities;
  }

  get url(): string {
    return this.inner.url;
  }

  get total(): number {
    return this.requests.length;
  }

  reset(): void {
    this.requests.splice(0);
    for (const k of Object.keys(this.counts)) delete this.counts[k];
  }

  private note(op: string, key: string): void {
    this.counts[op] = (this.counts[op] ?? 0) + 1;
    this.requests.push(`${op} ${key}`);
  }

  private async slow(): Promise<void> {
    if (this.options.transferDelayMs) await new Promise((r) => setTimeout(r, this.options.transferDelayMs));
  }

  get(key: string, options?: { range?: { start: number; end: number } }) {
    this.note('get', key);
    return this.inner.get(key, options);
  }

  head(key: string) {
    this.note('head', key);
    return this.inner.head(key);
  }

  put(key: string, body: Buffer | string, options?: PutOptions) {
    this.note('put', key);
    return this.inner.put(key, body, options);
  }

  async uploadFile(key: string, path: string, options?: UploadOptions) {
    this.note('uploadFile', key);
    await this.slow();
    return this.inner.uploadFile(key, path, options);
  }

  downloadFile(key: string, path: string, options?: TransferProgress) {
    this.note('downloadFile', key);
    return this.inner.downloadFile(key, path, options);
  }

  async copy(from: string, to: string, options?: CopyOptions) {
    this.note('copy', to);
    await this.slow();
    return this.inner.copy(from, to, options);
  }

  delete(keys: string[]) {
    this.note('delete', keys[0] ?? '');
    return this.inner.delete(keys);
  }

  tag(key: string, tags: Record<string, string>) {
    this.note('tag', key);
    return this.inner.tag(key, tags);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    this.note('list', prefix);
    return this.inner.list(prefix);
  }

  listFolders(prefix: string) {
    this.note('listFolders', prefix);
    return this.inner.listFolders(prefix);
  }

  close() {
    return this.inner.close();
  }
}
