import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { readLatest } from '../../src/snapshots/pointer.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import { createStore } from '../../src/store/index.js';
import bank from '../../examples/bank/processor.js';
import { bankModel } from '../helpers/bank-model.js';
import { FaultyStore, ThrottledStore } from '../helpers/faulty-store.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { embeddedConfig, readState, releasedAfterEach, writeConfig } from '../helpers/runtime-harness.js';

/**
 * A fresh node restoring while another worker checkpoints every few hundred records: by the
 * time its slow download of the snapshot latest.json named ends, newer checkpoints have
 * evicted that snapshot and every other one the pointer listed. The restore reads the
 * pointer again and restores a newer snapshot (bounded rounds), instead of NO_SNAPSHOT.
 * Also: restores killed midway leave no folders behind once the next restore runs.
 */

const P = 'p0';
const { dirs, closers } = releasedAfterEach();

/** A worker that snapshots every 200 records; `evictionGraceMs` as given (the default when absent). */
function world(evictionGraceMs?: number) {
  const dir = tempDir('cairn-restore-rounds-');
  dirs.push(dir);
  const { raw, config } = embeddedConfig(dir, { snapshots: { everyRecords: 200, retain: 3, concurrency: 4, ...(evictionGraceMs === undefined ? {} : { evictionGraceMs }) } });
  const log = new EmbeddedLog({ dir: join(dir, 'log') });
  closers.push(() => log.close());
  return { dir, raw, config, log };
}

describe('a restore slower than the checkpoints around it', () => {
  it('throttled to 8 KB/s while a worker checkpoints every 200 records: restores the snapshot it was pointed at (eviction grace)', { timeout: 120_000 }, async () => {
    const w = world();
    const events = bankEvents(40_000, 23);
    await w.log.append(P, events.slice(0, 2000));
    const worker = new Cairn(w.config, { log: w.log });
    closers.push(() => worker.store.close());
    const processor = worker.processor(P, bank);
    await processor.run({ untilLsn: 1999 });
    const stop = new AbortController();
    let appended = 2000;
    const feeding = (async () => {
      // Records keep arriving, and the worker keeps checkpointing, for as long as the restore runs.
      while (!stop.signal.aborted && appended < events.length) {
        await w.log.append(P, events.slice(appended, appended + 100));
        appended += 100;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const running = processor.run({ signal: stop.signal });

    const slow = new ThrottledStore(createStore(w.config.store), 8 * 1024);
    closers.push(() => slow.close());
    // However fast this machine, the restore's last file (CURRENT) arrives only once the
    // worker has evicted the snapshot being restored: the slow link outlives its retention.
    let restoringFrom: string | undefined;
    const last = slow.gate('downloadFile', (key) => {
      const m = /^p0\/([0-9A-Z]+)_\d+\/CURRENT$/.exec(key);
      if (m) restoringFrom = m[1];
      return m !== null;
    });
    void last.arrived.then(async () => {
      while ((await readLatest(worker.store, P))!.pointer.retained.some((e) => e.snapshotId === restoringFrom)) await new Promise((r) => setTimeout(r, 50));
      last.release();
    });
    const target = join(w.dir, 'fresh', P);
    const restoring = new SnapshotRepository(slow, { retain: 3, concurrency: 4 }).restore({ partition: P, targetDir: target });
    let result: Awaited<typeof restoring>;
    try {
      result = await restoring;
    } finally {
      stop.abort();
      await feeding;
      await running;
      await processor.close();
    }
    const latest = (await readLatest(worker.store, P))!.pointer;
    // The download outlived the snapshot's retention: what it restored is no longer retained,
    // and yet it was all there, in the first round.
    expect(slow.downloadedBytes).toBe(result.bytes);
    expect(latest.retained.map((e) => e.snapshotId)).not.toContain(result.metadata.snapshotId);
    expect(latest.evicted?.map((e) => e.snapshotId)).toContain(result.metadata.snapshotId);
    expect(result.skipped).toEqual([]);
    const state = await readState(target);
    expect(state.lsn).toBe(result.metadata.lsn);
    expect(state.entries).toEqual(bankModel(events, result.metadata.lsn));
  });

  it('with no eviction grace: reads latest.json again when every snapshot it listed was deleted meanwhile, and restores a newer one', async () => {
    const w = world(0);
    const events = bankEvents(1600, 21);
    await w.log.append(P, events.slice(0, 600));
    const worker = new Cairn(w.config, { log: w.log });
    closers.push(() => worker.store.close());
    const processor = worker.processor(P, bank);
    // One run per snapshot: a run ends once its snapshot is uploaded, so none is skipped for
    // being due while another is still in flight, however slow the machine.
    for (const untilLsn of [199, 399, 599]) await processor.run({ untilLsn });
    const before = (await readLatest(worker.store, P))!.pointer;
    expect(before.lsn).toBe(599);
    expect(before.retained.length).toBe(3);

    // The fresh node's link to the store is throttled to a standstill for its first round:
    // its first download waits until the worker has checkpointed past every listed snapshot.
    const slow = new FaultyStore(createStore(w.config.store));
    closers.push(() => slow.close());
    const gate = slow.gate('downloadFile');
    const fresh = new SnapshotRepository(slow, { retain: 3, concurrency: 4 });
    const target = join(w.dir, 'fresh', P);
    const restoring = fresh.restore({ partition: P, targetDir: target });
    await gate.arrived;

    await w.log.append(P, events.slice(600));
    await processor.run({ untilLsn: 1599 });
    await processor.close();
    const after = (await readLatest(worker.store, P))!.pointer;
    expect(after.lsn).toBeGreaterThanOrEqual(1399);
    // Every snapshot the fresh node was pointed at is gone.
    expect(after.retained.filter((e) => before.retained.some((b) => b.path === e.path))).toEqual([]);
    gate.release();

    const result = await restoring;
    expect(result.metadata.lsn).toBe(after.lsn);
    // The first round found the snapshots it was given gone, not damaged.
    expect(result.skipped.map((s) => s.code)).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
    const state = await readState(target);
    expect(state.lsn).toBe(after.lsn);
    expect(state.entries).toEqual(bankModel(events, after.lsn));
    expect(readdirSync(join(w.dir, 'fresh'))).toEqual([P]);
  });

  it('restores killed midway leave folders that the next restore removes', async () => {
    const w = world();
    const events = bankEvents(400, 22);
    await w.log.append(P, events);
    const worker = new Cairn(w.config, { log: w.log });
    closers.push(() => worker.store.close());
    const processor = worker.processor(P, bank);
    await processor.run({ untilLsn: 399 });
    await processor.close();
    const config = writeConfig(w.dir, w.raw);
    const into = join(w.dir, 'restores');
    for (let i = 0; i < 3; i++) {
      const killed = await runCli(['--config', config, 'restore', '--partition', P, '--to', join(into, 'target')], { env: { ...process.env, CAIRN_FAILPOINTS: 'restore:downloaded' } });
      expect(killed.signal).toBe('SIGKILL');
      // Each restore first removed what the previous, killed one left.
      expect(readdirSync(into).filter((n) => n.includes('.restore-')).length).toBe(1);
    }
    const ok = await runCli(['--config', config, '--json', 'restore', '--partition', P, '--to', join(into, 'target')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readdirSync(into)).toEqual(['target']);
    const state = await readState(join(into, 'target'));
    expect(state.entries).toEqual(bankModel(events, state.lsn));
  });
});
