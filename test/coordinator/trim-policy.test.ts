import { rmSync } from 'node:fs';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { normaliseConfig } from '../../src/core/config.js';
import { decideTrim, readArchivedLsn, type ReplicaReport, type TrimPolicy } from '../../src/coordinator/trim-policy.js';
import { Cairn } from '../../src/runtime/cairn.js';
import bank from '../../examples/bank/processor.js';
import { tempDir } from '../helpers/cli.js';

/**
 * The coordinator's trim decision against a simulated world: a log that grows, replicas that
 * apply, lag, report, go silent and bootstrap, snapshots published and evicted, coordinator
 * restarts (it keeps no state, so a restart changes nothing it decides) and trims.
 */
const RETAIN = 2;
const TTL = 10_000;

interface World {
  policy: TrimPolicy;
  log: { start: number; end: number };
  /** Retained snapshot LSNs, newest first (what latest.json lists). */
  retained: number[];
  replicas: Array<{ node: string; applied: number; seenAt: number }>;
  now: number;
  trims: number;
}

type Step =
  | { kind: 'append'; n: number }
  | { kind: 'apply'; replica: number; n: number }
  | { kind: 'snapshot'; replica: number }
  | { kind: 'report'; replica: number }
  | { kind: 'tick'; ms: number }
  | { kind: 'restart' }
  | { kind: 'trim' };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('append' as const), n: fc.integer({ min: 1, max: 50 }) }),
  fc.record({ kind: fc.constant('apply' as const), replica: fc.nat(2), n: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ kind: fc.constant('snapshot' as const), replica: fc.nat(2) }),
  fc.record({ kind: fc.constant('report' as const), replica: fc.nat(2) }),
  fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 8000 }) }),
  fc.constant({ kind: 'restart' as const }),
  fc.constant({ kind: 'trim' as const }),
  fc.constant({ kind: 'trim' as const }),
);

/** A replica behind the log start continues from the newest snapshot, as the runtime does. */
function catchUp(w: World, r: World['replicas'][number]): void {
  if (r.applied + 1 >= w.log.start) return;
  const newest = w.retained[0];
  // The property under test: a trim never leaves a replica with no way to continue.
  expect(newest, `replica ${r.node} at ${r.applied} behind log start ${w.log.start} with no snapshot`).toBeDefined();
  expect(newest! + 1, `newest snapshot ${newest} does not cover log start ${w.log.start}`).toBeGreaterThanOrEqual(w.log.start);
  r.applied = newest!;
}

function run(w: World, s: Step): void {
  switch (s.kind) {
    case 'append':
      w.log.end += s.n;
      return;
    case 'apply': {
      const r = w.replicas[s.replica]!;
      catchUp(w, r);
      r.applied = Math.min(w.log.end - 1, r.applied + s.n);
      return;
    }
    case 'snapshot': {
      const r = w.replicas[s.replica]!;
      catchUp(w, r);
      // latest.json never moves to a lower (or equal) LSN.
      if (r.applied >= 0 && (w.retained[0] === undefined || r.applied > w.retained[0])) w.retained = [r.applied, ...w.retained].slice(0, RETAIN);
      return;
    }
    case 'report':
      w.replicas[s.replica]!.seenAt = w.now;
      return;
    case 'tick':
      w.now += s.ms;
      return;
    case 'restart':
      return; // nothing to lose: every input below is re-read from the world
    case 'trim': {
      const archived = w.retained.length ? Math.min(...w.retained) : undefined;
      const reports: ReplicaReport[] = w.replicas.filter((r) => r.seenAt >= 0).map((r) => ({ node: r.node, appliedLsn: r.applied, seenAt: r.seenAt }));
      const d = decideTrim({ policy: w.policy, log: { ...w.log }, archivedLsn: archived, replicas: reports, replicaTtlMs: TTL, now: w.now });
      expect(d.reasons.length).toBeGreaterThan(0);
      expect(d.trimBefore, 'never decreases').toBeGreaterThanOrEqual(w.log.start);
      expect(d.trimBefore, 'never past the log end').toBeLessThanOrEqual(w.log.end);
      if (archived === undefined) expect(d.moves).toBe(false);
      else expect(d.trimBefore, 'never beyond archived + 1').toBeLessThanOrEqual(archived + 1);
      // A trim that moves never passes a live replica (one that joined after an earlier trim
      // may already be behind the start; no decision can undo that, and it bootstraps).
      if (w.policy === 'replicas' && d.moves) {
        for (const r of reports.filter((x) => w.now - x.seenAt <= TTL)) expect(d.trimBefore, `live replica ${r.node}`).toBeLessThanOrEqual(r.appliedLsn + 1);
      }
      expect(d.moves).toBe(d.trimBefore > w.log.start);
      if (d.moves) {
        w.log.start = d.trimBefore;
        w.trims++;
      }
      return;
    }
  }
}

describe('decideTrim: randomized simulation', () => {
  it('never exceeds archived + 1, never decreases, never passes the log end; under replicas never passes a live replica (1,000 runs)', () => {
    let trims = 0;
    let bootstraps = 0;
    fc.assert(
      fc.property(fc.constantFrom<TrimPolicy>('snapshot', 'replicas'), fc.array(step, { minLength: 30, maxLength: 120 }), (policy, steps) => {
        const w: World = {
          policy,
          log: { start: 0, end: 0 },
          retained: [],
          replicas: ['a', 'b', 'c'].map((node) => ({ node, applied: -1, seenAt: -1 })),
          now: 0,
          trims: 0,
        };
        for (const s of steps) {
          const before = w.replicas.map((r) => r.applied);
          run(w, s);
          bootstraps += w.replicas.filter((r, i) => r.applied > before[i]! && s.kind !== 'apply').length;
        }
        // Every replica can still continue after the last trim.
        for (const r of w.replicas) catchUp(w, r);
        trims += w.trims;
      }),
      { numRuns: 1000 },
    );
    // The runs did reach the interesting states.
    expect(trims).toBeGreaterThan(100);
    expect(bootstraps).toBeGreaterThan(10);
  });

  it('explains itself: each bound that applied is named', () => {
    const d = decideTrim({
      policy: 'replicas',
      log: { start: 10, end: 500 },
      archivedLsn: 300,
      replicas: [
        { node: 'fast', appliedLsn: 450, seenAt: 8000 },
        { node: 'slow', appliedLsn: 120, seenAt: 8000 },
        { node: 'gone', appliedLsn: 5, seenAt: 0 },
      ],
      replicaTtlMs: 5000,
      now: 9000,
    });
    expect(d).toMatchObject({ trimBefore: 121, moves: true });
    expect(d.reasons.join('\n')).toMatch(/archived LSN 300[\s\S]*replica slow has applied up to 120[\s\S]*1 replica\(s\) not seen/);
    expect(decideTrim({ policy: 'snapshot', log: { start: 0, end: 50 }, archivedLsn: undefined, replicas: [], replicaTtlMs: 1, now: 0 })).toMatchObject({ trimBefore: 0, moves: false });
  });

  it('waits out the trim delay: a snapshot younger than the delay holds the log start', () => {
    const input = { policy: 'snapshot' as const, log: { start: 10, end: 500 }, archivedLsn: 300, replicas: [], replicaTtlMs: 1000, archivedAt: 10_000, delayMs: 5_000 };
    const young = decideTrim({ ...input, now: 14_999 });
    expect(young).toMatchObject({ trimBefore: 10, moves: false });
    expect(young.reasons.join(' ')).toMatch(/4999 ms old; the trim delay is 5000 ms/);
    expect(decideTrim({ ...input, now: 15_000 })).toMatchObject({ trimBefore: 301, moves: true });
  });
});

describe('readArchivedLsn', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('is the lowest retained snapshot whose metadata.json verifies, read from the store', async () => {
    const dir = tempDir('cairn-archived-');
    dirs.push(dir);
    const config = normaliseConfig({ store: { url: 'file://./store' }, stateDir: './state', snapshots: { everyRecords: 100, retain: 3, concurrency: 4 }, runtime: { batchSize: 50, onBadRecord: 'stop' } }, dir, 'test');
    const cairn = new Cairn(config);
    try {
      expect(await readArchivedLsn(cairn.snapshots, 'p0')).toBeUndefined();
      await cairn.log.append('p0', bankEvents(500, 3));
      // One snapshot per 100 records, taken explicitly: four published, three retained.
      const p = cairn.processor('p0', bank, { everyRecords: 0 });
      for (const until of [99, 199, 299, 499]) await p.run({ untilLsn: until, checkpointOnExit: true });
      await p.close();
      const { pointer } = (await cairn.snapshots.latest('p0'))!;
      const lsns = pointer.retained.map((e) => e.lsn);
      expect(lsns).toHaveLength(3);
      expect(await readArchivedLsn(cairn.snapshots, 'p0')).toBe(Math.min(...lsns));
      // The oldest retained snapshot loses its metadata: it no longer counts.
      const oldest = pointer.retained[pointer.retained.length - 1]!;
      await cairn.store.delete([`${oldest.path}/metadata.json`]);
      expect(await readArchivedLsn(cairn.snapshots, 'p0')).toBe(Math.min(...lsns.filter((l) => l !== oldest.lsn)));
    } finally {
      await cairn.close();
    }
  });
});
