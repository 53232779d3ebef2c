import type { CopyOptions, ObjectInfo, ObjectStore, PutOptions, StoreCapabilities, TransferProgress, DownloadOptions, DownloadResult, UploadOptions } from './types.js';

/**
 * An ObjectStore whose backend is built on first use. The S3 backend pulls in the AWS SDK
 * (about half a second of module loading); CLI commands that fail validation or never touch
 * the store should not pay for it.
 */
export class LazyObjectStore implements ObjectStore {
  private loading: Promise<ObjectStore> | undefined;

  constructor(
    readonly capabilities: StoreCapabilities,
    readonly url: string,
    private readonly load: () => Promise<ObjectStore>,
  ) {}

  private backend(): Promise<ObjectStore> {
    this.loading ??= this.load();
    return this.loading;
  }

  async get(key: string, options?: { range?: { start: number; end: number } }): Promise<{ body: Buffer; etag: string }> {
    return (await this.backend()).get(key, options);
  }

  async head(key: string): Promise<ObjectInfo> {
    return (await this.backend()).head(key);
  }

  async put(key: string, body: Buffer | string, options?: PutOptions): Promise<{ etag: string }> {
    return (await this.backend()).put(key, body, options);
  }

  async uploadFile(key: string, path: string, options?: UploadOptions): Promise<{ etag: string; size: number }> {
    return (await this.backend()).uploadFile(key, path, options);
  }

  async downloadFile(key: string, path: string, options?: DownloadOptions): Promise<DownloadResult> {
    return (await this.backend()).downloadFile(key, path, options);
  }

  async copy(from: string, to: string, options?: CopyOptions): Promise<{ etag: string }> {
    return (await this.backend()).copy(from, to, options);
  }

  async delete(keys: string[]): Promise<void> {
    return (await this.backend()).delete(keys);
  }

  async tag(key: string, tags: Record<string, string>): Promise<void> {
    return (await this.backend()).tag(key, tags);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.backend()).list(prefix);
  }

  async listFolders(prefix: string): Promise<string[]> {
    return (await this.backend()).listFolders(prefix);
  }

  async close(): Promise<void> {
    if (this.loading) await (await this.loading).close();
  }
}
