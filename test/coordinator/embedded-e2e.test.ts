import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { bankEvents } from '../../src/cli/demo-events.js';
import { bankModel, parseDump, toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { startCoordinator, until } from '../helpers/coordinator.js';
import { watch, writeConfig, type Watched } from '../helpers/runtime-harness.js';

/**
 * The coordinator on the embedded log, which only one process may open: while the worker
 * holds it, the coordinator decides from the store and the worker's reports and the worker
 * performs the trim it is sent; once the worker is gone the coordinator trims directly.
 * Snapshot requests reach the worker through its report replies, and it declines one above
 * what it has applied.
 */
const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');
const stops: Array<() => unknown> = [];
afterAll(() => stops.forEach((s) => s()));


describe('coordinator on the embedded log', () => {
  it('delegates the trim to the worker holding the log, serves snapshot requests, then trims directly', async () => {
    const cwd = tempDir('cairn-coord-embedded-');
    const events = bankEvents(3000, 7);
    const base = { snapshots: { everyRecords: 1000, retain: 2, concurrency: 4 }, runtime: { batchSize: 250 } };
    writeConfig(cwd, base, 'coordinator.json');
    const appended = await runCli(['--config', 'coordinator.json', 'log', 'append', '--partition', 'p0', '--jsonl', '-'], { cwd, input: toJsonl(events) });
    expect(appended.code, appended.stderr).toBe(0);
    const coordinator = await startCoordinator(cwd, { globals: ['--config', 'coordinator.json'], flags: ['--trim-interval', '500ms'] });
    stops.push(() => coordinator.stop());
    writeConfig(cwd, { ...base, node: 'w1', coordinator: { url: coordinator.url, reportIntervalMs: 200 } }, 'worker.json');
    const worker: Watched = watch(spawnCli(['--config', 'worker.json', '--json', 'run', '--partition', 'p0', '--processor', PROCESSOR], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } }));
    stops.push(() => worker.isRunning() && worker.child.kill('SIGKILL'));

    // Snapshots about every 1000 records with retain 2: once two exist, the log may start
    // right after the older one.
    const delegated = await until('a delegated trim', async () => {
      const s = await coordinator.get<any>('/v1/partitions/p0');
      return s.log?.via === 'processor' && s.log.start > 0 && s.log.start === s.archivedLsn + 1 && s.replicas[0]?.appliedLsn === 2999 ? s : undefined;
    });
    const trimmedTo = delegated.log.start as number;
    expect(delegated).toMatchObject({ trimPoint: trimmedTo, lastTrim: { mode: 'automatic', delegated: true, before: trimmedTo }, replicas: [{ node: 'w1', appliedLsn: 2999 }] });
    await worker.waitForLine(/"type":"trim".*"status":"done".*coordinator command finished/);

    // Above what the worker applied: declined, and the reason is on record.
    const high = await coordinator.post('/v1/partitions/p0/snapshot-requests', { minLsn: 5000 });
    expect(high.status).toBe(202);
    const declined = await until('a declined request', async () => {
      const s = await coordinator.get<any>('/v1/partitions/p0');
      const r = s.snapshotRequests.find((x: { id: string }) => x.id === high.body.request.id);
      return r?.answers.length ? r : undefined;
    });
    expect(declined).toMatchObject({ status: 'pending', answers: [{ node: 'w1', status: 'declined', reason: 'applied LSN 2999 is behind minLsn 5000' }] });
    // Covered by the last snapshot: answered at once with it.
    const low = await coordinator.post('/v1/partitions/p0/snapshot-requests', { minLsn: 2500 });
    const done = await until('a served request', async () => {
      const s = await coordinator.get<any>('/v1/partitions/p0');
      const r = s.snapshotRequests.find((x: { id: string }) => x.id === low.body.request.id);
      return r?.status === 'done' ? r : undefined;
    });
    expect(done.answers).toEqual([expect.objectContaining({ node: 'w1', status: 'done', lsn: 2999 })]);

    worker.child.kill('SIGTERM');
    expect((await worker.exited).code, worker.stderr().slice(-2000)).toBe(0);
    // The worker is gone: the coordinator opens the log itself and finds it trimmed.
    const direct = await coordinator.post('/v1/partitions/p0/trim', { dryRun: true });
    expect(direct.body.log).toMatchObject({ end: 3000, via: 'log' });
    expect(direct.body.log.start).toBeGreaterThanOrEqual(trimmedTo);
    expect(direct.body.log.start).toBeLessThanOrEqual(direct.body.archivedLsn + 1);
    const info = await runCli(['--config', 'coordinator.json', '--json', 'log', 'info', '--partition', 'p0'], { cwd });
    expect(JSON.parse(info.stdout)).toMatchObject({ start: direct.body.log.start, end: 3000 });
    expect(parseDump((await runCli(['--config', 'worker.json', 'state', 'dump', '--partition', 'p0'], { cwd })).stdout).entries).toEqual(bankModel(events));
    expect(await coordinator.stop()).toBe(0);
  });
});
