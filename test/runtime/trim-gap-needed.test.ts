import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import { Cairn } from '../../src/runtime/cairn.js';
import bank from '../../examples/bank/processor.js';
import { tempDir } from '../helpers/cli.js';
import { embeddedConfig } from '../helpers/runtime-harness.js';

/**
 * The TRIM_GAP a node stops with names the LSN it really needs (issue 11): a node that would
 * bootstrap from the latest snapshot needs that snapshot's LSN + 1 (it used to say "needs
 * LSN 0" for a fresh node that would have bootstrapped from 4008), next to the log start.
 */
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the LSN a trim gap names', () => {
  it('is the latest snapshot + 1 for a fresh node and for one whose local state is older; its local LSN otherwise', async () => {
    const dir = tempDir('cairn-trim-gap-needed-');
    dirs.push(dir);
    const { config } = embeddedConfig(dir, { runtime: { batchSize: 50, onBadRecord: 'stop' } });
    const log = new EmbeddedLog({ dir: join(dir, 'log') });
    const cairn = new Cairn(config, { log });
    const node = (name: string) => cairn.processor('p0', bank, { stateDir: join(dir, `state-${name}`), everyRecords: 0 });
    const failure = async (name: string) => {
      const p = node(name);
      const err = await p.run({ stopAtEnd: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      await p.close();
      return err as { code: string; details: Record<string, unknown> };
    };
    try {
      const events = bankEvents(700, 5);
      await log.append('p0', events.slice(0, 400));
      // A lagging node stops at 99; node A snapshots at 399.
      const lag = node('lag');
      await lag.run({ untilLsn: 99 });
      await lag.close();
      const a = node('a');
      await a.run({ stopAtEnd: true, checkpointOnExit: true });
      await a.close();
      // More records, then a trim past them that no snapshot covers: LSN 400..599 are gone.
      await log.append('p0', events.slice(400));
      await log.trim('p0', 600);

      // A fresh node would bootstrap from the snapshot at 399 and replay from 400.
      expect(await failure('fresh')).toMatchObject({ code: 'TRIM_GAP', details: { partition: 'p0', needed: 400, logStart: 600, snapshotLsn: 399, localLsn: null } });
      expect(existsSync(join(dir, 'state-fresh'))).toBe(false);
      // So would the lagging node (its local state, at 99, is older than the snapshot).
      expect(await failure('lag')).toMatchObject({ code: 'TRIM_GAP', details: { needed: 400, logStart: 600, snapshotLsn: 399, localLsn: 99 } });
      // Node A replays from its own state.
      expect(await failure('a')).toMatchObject({ code: 'TRIM_GAP', details: { needed: 400, logStart: 600, snapshotLsn: 399, localLsn: 399 } });
    } finally {
      await cairn.close();
    }
  });

  it('with local state newer than the latest snapshot, is the LSN after the local state', async () => {
    const dir = tempDir('cairn-trim-gap-needed-');
    dirs.push(dir);
    const { config } = embeddedConfig(dir, { runtime: { batchSize: 50, onBadRecord: 'stop' } });
    const log = new EmbeddedLog({ dir: join(dir, 'log') });
    const cairn = new Cairn(config, { log });
    try {
      const events = bankEvents(600, 6);
      await log.append('p0', events.slice(0, 300));
      const p = cairn.processor('p0', bank, { everyRecords: 0 });
      await p.run({ untilLsn: 99, checkpointOnExit: true });
      await p.run({ stopAtEnd: true });
      await p.close();
      await log.append('p0', events.slice(300));
      await log.trim('p0', 500);
      const q = cairn.processor('p0', bank, { everyRecords: 0 });
      const err = await q.run({ stopAtEnd: true }).catch((e: unknown) => e);
      await q.close();
      expect(err).toMatchObject({ code: 'TRIM_GAP', details: { needed: 300, logStart: 500, snapshotLsn: 99, localLsn: 299 } });
      expect((err as Error).message).toMatch(/needs LSN 300 .*local state, at LSN 299.*older \(LSN 99\).*log starts at 500/);
    } finally {
      await cairn.close();
    }
  });
});
