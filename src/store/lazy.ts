import { ForwardingObjectStore } from './forwarding.js';
import type { ObjectStore, StoreCapabilities } from './types.js';

/**
 * An ObjectStore whose backend is built on first use. The S3 backend pulls in the AWS SDK
 * (about half a second of module loading); CLI commands that fail validation or never touch
 * the store should not pay for it.
 */
export class LazyObjectStore extends ForwardingObjectStore {
  private loading: Promise<ObjectStore> | undefined;

  constructor(
    readonly capabilities: StoreCapabilities,
    readonly url: string,
    private readonly load: () => Promise<ObjectStore>,
  ) {
    super();
  }

  protected target(): Promise<ObjectStore> {
    this.loading ??= this.load();
    return this.loading;
  }

  /** A store never loaded has nothing to close (and closing must not load the SDK). */
  override async close(): Promise<void> {
    if (this.loading) await (await this.loading).close();
  }
}
