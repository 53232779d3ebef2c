/** How long a processor waits after a failed snapshot before the policy asks for another. */
const RETRY_AFTER_FAILURE_MS = 5_000;

/**
 * When a processor takes a snapshot by records applied (`snapshots.everyRecords`; 0 = never).
 *
 * The rule: once a processor is caught up and no snapshot is in flight, its newest snapshot
 * is less than `everyRecords` behind what it applied. So the policy compares the applied LSN
 * with the LSN its newest snapshot covers — not a counter reset at capture — and the
 * processor asks it on every turn of its loop, after an empty read too, not only after a
 * batch. (It used to ask only after a batch, and skip while a snapshot was uploading: a
 * burst that ended during an upload was then never covered, the worker sat at applied 9999
 * with its newest snapshot at 5999 until the next record came.)
 *
 * Only a snapshot that settled moves the covered LSN: a failed one does not (the next is
 * due again after a pause), and one superseded by a newer pointer counts as that pointer.
 */
export class SnapshotPolicy {
  private coveredLsn: number;
  private retryAt = 0;

  constructor(
    private readonly everyRecords: number,
    coveredLsn = -1,
  ) {
    this.coveredLsn = coveredLsn;
  }

  /**
   * State was opened or replaced. `lsn` is the snapshot it was restored from; for local
   * state it is the applied LSN: which snapshot covers local state is not known without a
   * store request, and starting a worker on warm local state makes none.
   */
  reset(lsn: number): void {
    this.coveredLsn = lsn;
    this.retryAt = 0;
  }

  /** A snapshot covering `lsn` now exists (published, or a newer one superseded ours). */
  covered(lsn: number): void {
    this.coveredLsn = Math.max(this.coveredLsn, lsn);
  }

  failed(now: number): void {
    this.retryAt = now + RETRY_AFTER_FAILURE_MS;
  }

  /** Whether a snapshot should start now (the caller checks that none is in flight). */
  due(appliedLsn: number, now: number): boolean {
    return this.everyRecords > 0 && appliedLsn - this.coveredLsn >= this.everyRecords && now >= this.retryAt;
  }
}
