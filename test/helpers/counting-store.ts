import { WrappedObjectStore, type StoreCall } from '../../src/store/forwarding.js';
import type { ObjectInfo, ObjectStore } from '../../src/store/types.js';

/**
 * Counts every request made through an ObjectStore (list counts once per call, however many
 * objects it yields), optionally delaying the transfers that make a checkpoint slow. A thin
 * wrapper over a real store, not a stand-in for one.
 */
export class CountingStore extends WrappedObjectStore {
  readonly counts: Record<string, number> = {};
  /** Every request in call order: `op key`. */
  readonly requests: string[] = [];

  constructor(
    inner: ObjectStore,
    private readonly options: { transferDelayMs?: number } = {},
  ) {
    super(inner);
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

  /** Counted when the call is made; transfers wait out the configured delay first. */
  protected override async around<T>(call: StoreCall, run: (attempt: number) => Promise<T>): Promise<T> {
    this.note(call.op, call.key);
    if (call.op === 'uploadFile' || call.op === 'copy') await this.slow();
    return run(1);
  }

  override list(prefix: string): AsyncIterable<ObjectInfo> {
    this.note('list', prefix);
    return this.inner.list(prefix);
  }
}
