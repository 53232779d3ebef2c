import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import bank from '../../examples/bank/processor.js';
import { bankEvents } from '../../src/cli/demo-events.js';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { createCoordinatorMetrics } from '../../src/coordinator/metrics.js';
import { readArchived } from '../../src/coordinator/trim-policy.js';
import type { Log } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import { createStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/cli.js';
import { FaultyStore } from '../helpers/faulty-store.js';
import { releasedAfterEach } from '../helpers/runtime-harness.js';

/**
 * The coordinator never trims a partition's log past what every store of its class can
 * bootstrap from: random interleavings of appends, checkpoints, a region's outages (a
 * switchable fault on its store), replica reports and trims, under both trim policies.
 * After every step the log start is checked against each region's own archived LSN, read
 * straight from that region's store with no fault in the way.
 */
const { dirs, closers } = releasedAfterEach();
const P = 'geo-1';

type Step = { kind: 'append'; n: number } | { kind: 'checkpoint' } | { kind: 'outage'; down: boolean } | { kind: 'report' } | { kind: 'trim' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.integer({ min: 5, max: 60 }).map((n) => ({ kind: 'append' as const, n })), weight: 3 },
  { arbitrary: fc.constant({ kind: 'checkpoint' as const }), weight: 3 },
  { arbitrary: fc.boolean().map((down) => ({ kind: 'outage' as const, down })), weight: 2 },
  { arbitrary: fc.constant({ kind: 'report' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'trim' as const }), weight: 3 },
);

async function archivedIn(repository: SnapshotRepository): Promise<number | undefined> {
  return (await readArchived(repository, P)).archived?.lsn;
}

describe('trimming over two regions', () => {
  it('never moves the log start past the lowest archived LSN + 1 of the class\'s stores (randomized)', async () => {
    // The runs must really trim, and really be held back by the lagging region, to mean anything.
    const seen = { moved: 0, heldBack: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 4, maxLength: 24 }), fc.constantFrom('snapshot' as const, 'replicas' as const), async (steps, policy) => {
        const dir = tempDir('regions-trim-');
        dirs.push(dir);
        const raw = {
          stores: { eu: { url: 'file://./eu' }, us: { url: 'file://./us' } },
          storageClasses: { GEO: { stores: ['eu', 'us'] } },
          defaultClass: 'GEO',
          log: { type: 'embedded' as const, dir: './log' },
          stateDir: './state',
          snapshots: { everyRecords: 0, retain: 2, evictionGraceMs: 0 },
        };
        const config = normaliseConfig(raw, dir, 'regions-trim');
        const eu = createStore(config.placement.stores.eu!, { retry: false });
        const usInner = createStore(config.placement.stores.us!, { retry: false });
        const us = new FaultyStore(usInner);
        let down = false;
        us.outage(() => down);
        const cairn = new Cairn(config, { stores: { eu, us } });
        // Independent readers of each region's truth: no fault, no placement logic.
        const truth = [new SnapshotRepository(eu, { retain: 2, concurrency: 4 }), new SnapshotRepository(usInner, { retain: 2, concurrency: 4 })];
        // The coordinator shares the worker's log (the embedded log is single-process).
        const shared = (): Log => new Proxy(cairn.log, { get: (t, prop, r) => (prop === 'close' ? async () => undefined : (Reflect.get(t, prop, r) as unknown)) });
        const coordinator = new Coordinator({
          createLog: shared,
          repository: cairn.snapshots,
          placement: cairn.placement,
          policy,
          trimIntervalMs: 0,
          trimDelayMs: 0,
          replicaTtlMs: 60_000,
          logger: silentLogger,
          metrics: createCoordinatorMetrics(),
        });
        closers.push(() => coordinator.close(), () => cairn.close());
        let seed = 1;
        let applied = -1;
        for (const step of steps) {
          if (step.kind === 'append') {
            await cairn.log.append(P, bankEvents(step.n, seed++));
            const processor = cairn.processor(P, bank, { everyRecords: 0 });
            applied = (await processor.run({ stopAtEnd: true })).appliedLsn;
            await processor.close();
          } else if (step.kind === 'checkpoint' && applied >= 0) {
            const result = await cairn.checkpointStateDir(P, cairn.stateDirOf(P)).catch((err: unknown) => err);
            // With us down the snapshot still lands in eu; only both failing would throw.
            expect(result).not.toBeInstanceOf(Error);
          } else if (step.kind === 'outage') {
            down = step.down;
          } else if (step.kind === 'report' && applied >= 0) {
            coordinator.report(P, { node: 'w1', appliedLsn: applied, snapshotLsn: -1 });
          } else if (step.kind === 'trim' && applied >= 0) {
            const outcome = await coordinator.trim(P, { dryRun: false });
            if (down) expect(outcome.moves).toBe(false);
            if (outcome.moves) seen.moved++;
            if (outcome.reasons.some((r) => r.includes('store us'))) seen.heldBack++;
          }
          const start = (await cairn.log.info(P)).start;
          if (start > 0) {
            for (const [i, repo] of truth.entries()) {
              const archived = await archivedIn(repo);
              expect(archived, `region ${i === 0 ? 'eu' : 'us'} has no snapshot but the log starts at ${start}`).toBeDefined();
              expect(start, `region ${i === 0 ? 'eu' : 'us'} archived ${archived}`).toBeLessThanOrEqual(archived! + 1);
            }
          }
        }
        await coordinator.close();
        await cairn.close();
      }),
      { numRuns: Number(process.env.CAIRN_PROPERTY_RUNS ?? 25) },
    );
    expect(seen.moved, 'trims that moved the log start, over all runs').toBeGreaterThan(0);
    expect(seen.heldBack, 'trims whose reasons name store us, over all runs').toBeGreaterThan(0);
  });
});
