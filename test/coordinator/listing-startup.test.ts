import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { createCoordinatorMetrics } from '../../src/coordinator/metrics.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import type { Log } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { tempDir } from '../helpers/cli.js';

/**
 * A coordinator that has just started knows no partition until its first listing of the log
 * and the store returns. Requests arriving meanwhile (the first processor reports) must wait
 * for that listing, not be answered 404 from the empty one.
 */
describe('coordinator start-up', () => {
  it('answers a partition that exists while its first listing is still loading', async () => {
    const dir = tempDir('cairn-coord-startup-');
    const config = normaliseConfig({}, dir, 'test');
    const logDir = config.log.type === 'embedded' ? config.log.dir : '';
    const cairn = new Cairn(config);
    await cairn.log.append('p0', [{ key: 'a', value: 1 }]);
    await cairn.close();

    // A slow listing, as a large bucket or a distant broker gives.
    const slowLog = (): Log => {
      const log = new EmbeddedLog({ dir: logDir });
      return new Proxy(log, {
        get(target, prop, receiver) {
          if (prop === 'partitions') {
            return async () => {
              await sleep(300);
              return target.partitions();
            };
          }
          const value = Reflect.get(target, prop, receiver) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    };
    const reader = new Cairn(config);
    const coordinator = new Coordinator({
      createLog: slowLog,
      repository: reader.snapshots,
      policy: 'snapshot',
      trimIntervalMs: 0,
      trimDelayMs: 0,
      replicaTtlMs: 60_000,
      logger: silentLogger,
      metrics: createCoordinatorMetrics(),
    });
    try {
      const answers = await Promise.all([coordinator.isKnown('p0'), coordinator.isKnown('p0'), coordinator.isKnown('p0')]);
      expect(answers).toEqual([true, true, true]);
      // A name that is nowhere is still unknown once the listing is in.
      expect(await coordinator.isKnown('nope')).toBe(false);
    } finally {
      await coordinator.close();
      await reader.close();
    }
  });
});
