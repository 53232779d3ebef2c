/**
 * A fixed set of equal, reusable buffers. Reuse is the point: on a restore every downloaded
 * byte passes through one, and fresh memory for each would cost a page fault per 4 KiB and a
 * collection later. Waiters are served in order, so memory stays at `count × size`.
 */
export interface Segment {
  readonly buffer: Buffer;
}

export class SegmentPool {
  private readonly free: Segment[] = [];
  private readonly waiters: Array<(segment: Segment) => void> = [];
  private created = 0;

  constructor(
    readonly segmentBytes: number,
    private readonly count: number,
  ) {}

  /** A segment now, or undefined when all are in use. */
  tryAcquire(): Segment | undefined {
    if (this.waiters.length > 0) return undefined;
    const segment = this.free.pop();
    if (segment) return segment;
    if (this.created < this.count) {
      this.created++;
      return { buffer: Buffer.allocUnsafeSlow(this.segmentBytes) };
    }
    return undefined;
  }

  acquire(): Promise<Segment> {
    const now = this.tryAcquire();
    return now ? Promise.resolve(now) : new Promise((resolve) => this.waiters.push(resolve));
  }

  release(segment: Segment): void {
    const next = this.waiters.shift();
    if (next) next(segment);
    else this.free.push(segment);
  }
}
