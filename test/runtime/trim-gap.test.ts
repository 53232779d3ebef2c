import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { loadConfig } from '../../src/core/config.js';
import type { AppendRecord } from '../../src/log/types.js';
import { createStore } from '../../src/store/index.js';
import { BACKENDS, type BackendCase } from '../helpers/backends.js';
import { bankModel, parseDump, toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, tempDir } from '../helpers/cli.js';
import { hashTree, listTree, writeConfig } from '../helpers/runtime-harness.js';

/**
 * Trim gaps end to end (README, "Restore / bootstrap"): nodes share one store and one log
 * and differ only in their state folder (one config file each). A node whose next LSN was
 * trimmed away bootstraps from the latest snapshot when that snapshot covers the log start,
 * and ends with exactly the state of a node that lost nothing; when nothing covers the gap
 * it stops with TRIM_GAP naming both numbers and leaves its local state byte-for-byte as is.
 */

const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');

interface Cluster {
  cwd: string;
  events: AppendRecord[];
  /** Appends the next `count` events of `events` through `cairn log append`. */
  append(count: number): Promise<{ first: number; last: number }>;
  /** Runs the CLI with node `node`'s config (each node: its own stateDir, shared store and log). */
  cli(node: string, ...args: string[]): ReturnType<typeof runCli>;
  dump(node: string): Promise<{ lsn: number; entries: Map<string, unknown> }>;
  run(node: string, ...extra: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json: any }>;
  latest(): Promise<{ lsn: number; retained: Array<{ lsn: number }> } | undefined>;
  stateDir(node: string): string;
  storeKeys(): Promise<string[]>;
}

function cluster(backend: BackendCase, label: string, nodes: string[], eventCount: number): Cluster {
  const cwd = tempDir(`cairn-trim-${backend.name}-`);
  dirs.push(cwd);
  const store = backend.storeConfig(label);
  for (const node of nodes) {
    writeConfig(
      cwd,
      {
        store,
        log: { type: 'embedded', dir: './log' },
        stateDir: `./state-${node}`,
        node: `node-${node}`,
        snapshots: { everyRecords: 1000, retain: 2, concurrency: 8 },
        runtime: { batchSize: 250 },
      },
      `${node}.json`,
    );
  }
  const events = bankEvents(eventCount, 31);
  let appended = 0;
  let batch = 0;
  const c: Cluster = {
    cwd,
    events,
    async append(count) {
      const file = `batch-${batch++}.jsonl`;
      writeFileSync(join(cwd, file), toJsonl(events.slice(appended, appended + count)));
      const r = await runCli(['--config', `${nodes[0]}.json`, '--json', 'log', 'append', '--partition', 'p0', '--jsonl', file], { cwd });
      expect(r.code, r.stderr).toBe(0);
      appended += count;
      return JSON.parse(r.stdout) as { first: number; last: number };
    },
    cli: (node, ...args) => runCli(['--config', `${node}.json`, ...args], { cwd }),
    async dump(node) {
      const r = await c.cli(node, 'state', 'dump', '--partition', 'p0');
      expect(r.code, r.stderr).toBe(0);
      return parseDump(r.stdout);
    },
    async run(node, ...extra) {
      const r = await c.cli(node, '--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, ...extra);
      let json: any;
      try {
        json = JSON.parse(r.stdout);
      } catch {
        json = undefined;
      }
      return { ...r, json };
    },
    async latest() {
      const s = createStore(loadConfig({ file: join(cwd, `${nodes[0]}.json`) }).store);
      try {
        const { body } = await s.get('p0/latest.json');
        return JSON.parse(body.toString()) as { lsn: number; retained: Array<{ lsn: number }> };
      } catch (err) {
        if ((err as { code?: string }).code === 'NOT_FOUND') return undefined;
        throw err;
      } finally {
        await s.close();
      }
    },
    stateDir: (node) => join(cwd, `state-${node}`),
    async storeKeys() {
      const s = createStore(loadConfig({ file: join(cwd, `${nodes[0]}.json`) }).store);
      try {
        const keys: string[] = [];
        for await (const o of s.list('')) keys.push(o.key);
        return keys;
      } finally {
        await s.close();
      }
    },
  };
  return c;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.each(BACKENDS)('trim gaps on $name', (backend) => {
  it('a fresh node and a lagging node across a coverable trim gap end exactly like a node that lost nothing', async () => {
    const c = cluster(backend, 'trim-gap-ok', ['a', 'b', 'lag'], 5000);
    await c.append(3000);

    // The lagging node applies a little, then goes away with its local state.
    const lag = await c.run('lag', '--until-lsn', '500');
    expect(lag.code, lag.stderr).toBe(0);
    expect(lag.json).toMatchObject({ appliedLsn: 500, stoppedBy: 'until-lsn', snapshots: [] });

    // Node A applies everything with checkpoints.
    const a1 = await c.run('a', '--stop-at-end', '--checkpoint-on-exit');
    expect(a1.code, a1.stderr).toBe(0);
    expect(a1.json).toMatchObject({ appliedLsn: 2999, stoppedBy: 'end-of-log' });
    const latest = await c.latest();
    expect(latest?.lsn).toBe(2999);
    // Trim exactly what the coordinator would: everything up to the archived LSN.
    const archived = Math.min(...latest!.retained.map((e) => e.lsn));
    expect(archived).toBeGreaterThan(501);
    const trimmed = await c.cli('a', '--json', 'log', 'trim', '--partition', 'p0', '--before', String(archived + 1));
    expect(trimmed.code, trimmed.stderr).toBe(0);
    expect(JSON.parse(trimmed.stdout)).toMatchObject({ start: archived + 1, end: 3000 });
    await c.append(2000);

    // (a) A fresh node bootstraps from latest.json, then tails the log.
    const b = await c.run('b', '--stop-at-end');
    expect(b.code, b.stderr).toBe(0);
    expect(b.json).toMatchObject({ start: { source: 'bootstrap', lsn: 2999 }, appliedLsn: 4999, recordsApplied: 2000, stoppedBy: 'end-of-log' });

    const a2 = await c.run('a', '--stop-at-end');
    expect(a2.code, a2.stderr).toBe(0);
    expect(a2.json).toMatchObject({ start: { source: 'local', lsn: 2999 }, appliedLsn: 4999 });
    const [dumpA, dumpB] = [await c.dump('a'), await c.dump('b')];
    expect(dumpB).toEqual(dumpA);
    expect(dumpA.lsn).toBe(4999);
    expect(dumpA.entries).toEqual(bankModel(c.events));

    // (b) The lagging node's local state (LSN 500) is behind the trim point: it bootstraps.
    const lag2 = await c.run('lag', '--stop-at-end');
    expect(lag2.code, lag2.stderr).toBe(0);
    expect(lag2.json.start.source).toBe('bootstrap');
    expect(lag2.json.start.reason).toMatch(new RegExp(`trim gap: needed LSN 501, log starts at ${archived + 1}`));
    expect(lag2.json.start.lsn).toBeGreaterThanOrEqual(2999);
    expect(lag2.json.appliedLsn).toBe(4999);
    expect(await c.dump('lag')).toEqual(dumpA);
  });

  it('an uncoverable trim gap stops with TRIM_GAP naming both numbers and leaves local state byte-for-byte unchanged', async () => {
    const c = cluster(backend, 'trim-gap-bad', ['a', 'lag'], 4000);
    await c.append(3000);
    expect((await c.run('lag', '--until-lsn', '500')).code).toBe(0);
    const a = await c.run('a', '--stop-at-end', '--checkpoint-on-exit');
    expect(a.code, a.stderr).toBe(0);
    expect((await c.latest())?.lsn).toBe(2999);

    // Records no snapshot holds, then a (forced) trim past them: nothing covers LSN 501..3499 any more.
    await c.append(500);
    const trimmed = await c.cli('a', '--json', 'log', 'trim', '--partition', 'p0', '--before', '3500', '--force');
    expect(JSON.parse(trimmed.stdout)).toMatchObject({ start: 3500, end: 3500 });
    await c.append(500);

    const before = hashTree(c.stateDir('lag'));
    expect(Object.keys(before).length).toBeGreaterThan(0);
    const lag = await c.run('lag', '--stop-at-end');
    expect(lag.code, lag.stderr).toBe(1);
    const line = lag.stderr.split('\n').find((l) => l.startsWith('cairn: error:'));
    expect(line).toMatch(/3500/);
    expect(line).toMatch(/2999/);
    expect(line).toMatch(/\[TRIM_GAP\]$/);
    // It would bootstrap from the snapshot at 2999 (newer than its state at 500): it needs 3000.
    expect(lag.json).toMatchObject({ error: { code: 'TRIM_GAP', details: { needed: 3000, logStart: 3500, snapshotLsn: 2999, localLsn: 500 } } });
    expect(hashTree(c.stateDir('lag'))).toEqual(before);

    // Node A, which lost nothing but is also behind the trim point now, is refused the same way.
    const aBefore = hashTree(c.stateDir('a'));
    const a2 = await c.run('a', '--stop-at-end');
    expect(a2.code, a2.stderr).toBe(1);
    expect(a2.json).toMatchObject({ error: { code: 'TRIM_GAP', details: { needed: 3000, logStart: 3500, snapshotLsn: 2999, localLsn: 2999 } } });
    expect(hashTree(c.stateDir('a'))).toEqual(aBefore);
    // Nothing was published by the refused runs.
    expect((await c.latest())?.lsn).toBe(2999);
  });

  it('with no snapshot at all, a trimmed log stops a fresh node with TRIM_GAP and creates nothing', async () => {
    const c = cluster(backend, 'trim-gap-none', ['a'], 1000);
    await c.append(1000);
    const trimmed = await c.cli('a', '--json', 'log', 'trim', '--partition', 'p0', '--before', '500', '--force');
    expect(JSON.parse(trimmed.stdout)).toMatchObject({ start: 500, end: 1000 });

    const r = await c.run('a', '--stop-at-end');
    expect(r.code, r.stderr).toBe(1);
    expect(r.json).toMatchObject({ error: { code: 'TRIM_GAP', details: { needed: 0, logStart: 500, snapshotLsn: null, localLsn: null } } });
    expect(r.stderr).toMatch(/500.*no snapshot/);
    expect(existsSync(c.stateDir('a')) ? listTree(c.stateDir('a')) : []).toEqual([]);
    expect(await c.storeKeys()).toEqual([]);
  });
});
