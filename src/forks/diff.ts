import { CLI_DEFAULTS } from '../core/defaults.js';
import { isDeepStrictEqual } from 'node:util';
import type { StateEntry } from '../state/types.js';

/**
 * A key-by-key comparison of two states, streamed: both sides are read in key order and
 * merged, so memory holds one entry per side plus the samples, whatever the state sizes.
 */
export interface DiffSideInfo {
  partition: string;
  snapshotId?: string;
  lsn: number;
}

export interface DiffSample {
  key: string;
  change: 'added' | 'removed' | 'changed';
  a?: unknown;
  b?: unknown;
}

export interface DiffResult {
  a: DiffSideInfo;
  b: DiffSideInfo;
  /**
   * The applied LSN of each side. When they differ the comparison mixes two effects: other
   * logic and records only one side has applied; `warning` then says so in words.
   */
  lsns: { a: number; b: number; same: boolean };
  warning?: string;
  /** Keys only in B. */
  added: number;
  /** Keys only in A. */
  removed: number;
  changed: number;
  unchanged: number;
  /** The first few differences in key order. */
  samples: DiffSample[];
}

export interface DiffOptions {
  samples?: number;
  /** Called for every difference (the CLI streams them with --all). */
  onDifference?: (d: DiffSample) => void;
}

function differentLsns(a: DiffSideInfo, b: DiffSideInfo): string {
  const [behind, ahead] = a.lsn < b.lsn ? (['A', 'B'] as const) : (['B', 'A'] as const);
  return `A is at LSN ${a.lsn} and B at LSN ${b.lsn}: the differences include the records ${ahead} has applied and ${behind} has not (LSN ${Math.min(a.lsn, b.lsn) + 1}..${Math.max(a.lsn, b.lsn)})`;
}

/** LevelDB orders keys by their UTF-8 bytes; JavaScript string order differs past U+FFFF. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export async function diffStates(
  a: { info: DiffSideInfo; entries: AsyncIterable<StateEntry> },
  b: { info: DiffSideInfo; entries: AsyncIterable<StateEntry> },
  options: DiffOptions = {},
): Promise<DiffResult> {
  const maxSamples = options.samples ?? CLI_DEFAULTS.diffSamples;
  const same = a.info.lsn === b.info.lsn;
  const result: DiffResult = {
    a: a.info,
    b: b.info,
    lsns: { a: a.info.lsn, b: b.info.lsn, same },
    ...(same ? {} : { warning: differentLsns(a.info, b.info) }),
    added: 0,
    removed: 0,
    changed: 0,
    unchanged: 0,
    samples: [],
  };
  const record = (d: DiffSample) => {
    result[d.change]++;
    if (result.samples.length < maxSamples) result.samples.push(d);
    options.onDifference?.(d);
  };
  const ia = a.entries[Symbol.asyncIterator]();
  const ib = b.entries[Symbol.asyncIterator]();
  let ea = await ia.next();
  let eb = await ib.next();
  while (!ea.done || !eb.done) {
    const order = ea.done ? 1 : eb.done ? -1 : compareKeys(ea.value.key, eb.value.key);
    if (order < 0) {
      record({ key: ea.value!.key, change: 'removed', a: ea.value!.value });
      ea = await ia.next();
    } else if (order > 0) {
      record({ key: eb.value!.key, change: 'added', b: eb.value!.value });
      eb = await ib.next();
    } else {
      if (isDeepStrictEqual(ea.value!.value, eb.value!.value)) result.unchanged++;
      else record({ key: ea.value!.key, change: 'changed', a: ea.value!.value, b: eb.value!.value });
      ea = await ia.next();
      eb = await ib.next();
    }
  }
  return result;
}
