import { CairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { LogRecord } from '../log/types.js';
import { isLocalCorruption } from '../state/integrity.js';
import { DELETE, type StateWrite } from '../state/types.js';
import type { RuntimeMetrics } from './metrics.js';
import type { RecordDecoder } from './processor-hooks.js';
import type { Processor, ProcessorRecord, ProcessorState } from './processor-module.js';

const ABSENT = Symbol('absent');

/**
 * The writes of one batch, layered over the committed state. A per-record undo journal lets
 * a record that throws be dropped (onBadRecord: "skip") without losing the batch's other
 * records; it is cleared, not reallocated, for each record because this is the hot path.
 */
export class BatchWrites {
  readonly writes = new Map<string, StateWrite>();
  private readonly undo = new Map<string, StateWrite | typeof ABSENT>();

  /**
   * @param journal keep the per-record undo journal. Only `onBadRecord: "skip"` rolls a record
   * back; when a throw fails the whole batch anyway the journal is pure cost on the hot path.
   */
  constructor(
    private readonly read: (key: string) => Promise<unknown>,
    private readonly journal = true,
  ) {}

  readonly view: ProcessorState = {
    get: async (key) => {
      checkKey(key);
      if (this.writes.has(key)) {
        const v = this.writes.get(key);
        return v === DELETE ? undefined : copyOf(v);
      }
      return this.read(key);
    },
    put: (key, value) => {
      checkKey(key);
      if (value === undefined) throw new CairnError('PROCESSOR_FAILED', `state.put(${JSON.stringify(key)}) with undefined; use state.del`);
      this.remember(key);
      this.writes.set(key, value);
    },
    del: (key) => {
      checkKey(key);
      this.remember(key);
      this.writes.set(key, DELETE);
    },
  };

  beginRecord(): void {
    if (this.journal) this.undo.clear();
  }

  /** Drops the writes of the current record only. */
  rollbackRecord(): void {
    if (!this.journal) throw new CairnError('INTERNAL', 'rollbackRecord on a batch kept without its undo journal');
    for (const [key, prior] of this.undo) {
      if (prior === ABSENT) this.writes.delete(key);
      else this.writes.set(key, prior);
    }
    this.undo.clear();
  }

  clear(): void {
    this.writes.clear();
    this.undo.clear();
  }

  private remember(key: string): void {
    if (this.journal && !this.undo.has(key)) this.undo.set(key, this.writes.has(key) ? this.writes.get(key) : ABSENT);
  }
}

export interface RecordApplier {
  processor: Processor;
  decode: RecordDecoder;
  partition: string;
  onBadRecord: 'stop' | 'skip';
  logger: Logger;
  metrics?: RuntimeMetrics | undefined;
}

/**
 * Applies `records` through the processor into `batch`, in order; returns how many were
 * skipped. A record that does not decode, or that the processor throws on, is bad data or a
 * bug for that record: with onBadRecord "skip" its writes are rolled back, and it is counted
 * and logged; with "stop" the whole batch fails and nothing of it commits, so the state stays
 * at the last good LSN. Damaged local state surfacing through a read is never the record's
 * fault: it always fails the batch (the processor rebuilds the state and replays it).
 */
export async function applyRecords(records: readonly LogRecord[], batch: BatchWrites, o: RecordApplier): Promise<number> {
  const { processor, partition, onBadRecord, logger, metrics } = o;
  let skipped = 0;
  for (const record of records) {
    batch.beginRecord();
    let undecodable = false;
    try {
      let input: ProcessorRecord;
      try {
        input = o.decode(record, partition);
      } catch (err) {
        undecodable = true;
        throw err;
      }
      await processor.apply(input, batch.view);
    } catch (err) {
      // Damaged local state surfaced through state.get: not this record's fault.
      if (isLocalCorruption(err)) throw err;
      if (onBadRecord === 'skip') {
        batch.rollbackRecord();
        skipped++;
        metrics?.recordsSkipped.inc({ partition, reason: undecodable ? 'decode' : 'processor' });
        logger.warn({ partition, lsn: record.lsn, err }, undecodable ? 'record could not be decoded; skipped' : 'processor threw; record skipped');
        continue;
      }
      // A decode failure already says what it is (CORRUPT, or the processor's own decode).
      if (undecodable) throw err;
      throw new CairnError('PROCESSOR_FAILED', `processor ${processor.name} failed on ${partition} at LSN ${record.lsn}: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
        details: { partition, lsn: record.lsn },
      });
    }
  }
  return skipped;
}

/**
 * What a read of a committed value would return: a fresh decoded copy. Handing out the
 * object held in `writes` would let a processor that changes what it read (without a put,
 * or before throwing) change the batch behind our back: the change would commit or not
 * depending on where the batch boundaries fall, and survive a skipped record's rollback.
 */
export function copyOf(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (value === null || typeof value !== 'object') return value;
  return JSON.parse(JSON.stringify(value));
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new CairnError('PROCESSOR_FAILED', `state keys must be non-empty strings, got ${JSON.stringify(key)}`);
  }
}
