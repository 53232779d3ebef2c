import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { loadConfig } from '../../src/core/config.js';
import { createStore } from '../../src/store/index.js';
import { bankModel, parseDump, toJsonl } from '../helpers/bank-model.js';
import { BACKENDS } from '../helpers/backends.js';
import { REPO_ROOT, jsonOf, runCli, tempDir } from '../helpers/cli.js';

const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');

describe.each(BACKENDS)('cairn CLI end to end on $name', (backend) => {
  it('appends, runs with snapshots, lists, verifies, restores, and falls back past a corrupt table', async () => {
    const cwd = tempDir();
    const config = join(cwd, 'cairn.config.json');
    writeFileSync(config, JSON.stringify({ store: backend.storeConfig('cli-e2e'), snapshots: { everyRecords: 1000, retain: 3, concurrency: 8 } }));
    const cli = (...args: string[]) => runCli(args, { cwd });
    const events = bankEvents(3000, 7);
    writeFileSync(join(cwd, 'events.jsonl'), toJsonl(events));

    expect(jsonOf(await cli('--json', 'log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl'))).toMatchObject({ first: 0, last: 2999 });

    const summary = jsonOf(await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end', '--checkpoint-on-exit'));
    expect(summary).toMatchObject({ appliedLsn: 2999, recordsApplied: 3000, stoppedBy: 'end-of-log', start: { source: 'empty' } });

    const list = JSON.parse((await cli('--json', 'snapshots', 'list', '--partition', 'p0')).stdout);
    const retained = list.snapshots.filter((s: { retained: boolean }) => s.retained);
    expect(retained.length).toBeGreaterThanOrEqual(2);
    expect(list.snapshots[0]).toMatchObject({ latest: true, lsn: 2999, complete: true });
    expect(list.snapshots.map((s: { lsn: number }) => s.lsn)).toEqual([...list.snapshots.map((s: { lsn: number }) => s.lsn)].sort((a, b) => b - a));

    const shown = JSON.parse((await cli('--json', 'snapshots', 'show', '--partition', 'p0')).stdout);
    expect(shown).toMatchObject({ format: 1, partition: 'p0', lsn: 2999, source: 'embedded:p0' });
    expect(shown.stats.copiedBytes).toBeGreaterThan(0);

    expect((await cli('verify', '--partition', 'p0')).code).toBe(0);

    const restored = await cli('--json', 'restore', '--partition', 'p0', '--to', 'restored');
    expect(restored.code, restored.stderr).toBe(0);
    const live = parseDump((await cli('state', 'dump', '--partition', 'p0')).stdout);
    const copy = parseDump((await cli('state', 'dump', '--state-dir', 'restored')).stdout);
    expect(copy).toEqual(live);
    expect(live.lsn).toBe(2999);
    expect(live.entries).toEqual(bankModel(events));

    // Flip one byte of a table the latest snapshot holds in its own folder.
    const store = createStore(loadConfig({ file: config }).store);
    const victim = shown.files.find((f: { name: string; key: string }) => f.name.endsWith('.ldb') && f.key.startsWith(`p0/${shown.snapshotId}_`));
    const { body } = await store.get(victim.key);
    const at = Math.floor(body.length / 2);
    body[at] = body[at]! ^ 0xff;
    await store.put(victim.key, body);
    await store.close();

    const bad = await cli('--json', 'verify', '--partition', 'p0');
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problems: [{ name: victim.name, problem: 'sha256' }] });

    const fallback = await cli('--json', 'restore', '--partition', 'p0', '--to', 'fallback');
    expect(fallback.code, fallback.stderr).toBe(0);
    expect(fallback.stderr).toMatch(/falling back/);
    const fell = JSON.parse(fallback.stdout);
    expect(fell.lsn).toBe(retained[1].lsn);
    expect(fell.fellBackFrom[0].path).toBe(`p0/${shown.snapshotId}_2999`);
    const older = parseDump((await cli('state', 'dump', '--state-dir', 'fallback')).stdout);
    expect(older.lsn).toBe(retained[1].lsn);
    expect(older.entries).toEqual(bankModel(events, retained[1].lsn));
  });
});
