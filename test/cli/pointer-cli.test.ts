import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.js';
import { layout, isTableFile } from '../../src/snapshots/layout.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import { latestSchema, type SnapshotMetadata } from '../../src/snapshots/schemas.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { createStore } from '../../src/store/index.js';
import type { ObjectStore } from '../../src/store/types.js';
import { BACKENDS } from '../helpers/backends.js';
import { jsonOf, runCli, tempDir, type CliResult } from '../helpers/cli.js';
import { dumpState, modelOf, removeDir, sortedEntries, writesAt } from '../helpers/snapshot-fixtures.js';

/**
 * `cairn pointer rebuild`, and what the other commands do around a garbage latest.json
 * (`snapshots list`, `restore`, `prune`), through the real CLI on every store backend.
 * Assertions on exit codes, error codes and JSON documents, never on messages.
 */

const P = 'p0';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});

interface Setup {
  cwd: string;
  store: ObjectStore;
  cli: (...args: string[]) => Promise<CliResult>;
  snaps: SnapshotMetadata[];
}

/** A config (retain 2) on the backend, and real snapshots of p0 at `lsns` (checkpointed with retain 3). */
async function setup(backend: (typeof BACKENDS)[number], lsns: number[]): Promise<Setup> {
  const cwd = tempDir('cairn-pointer-cli-');
  cleanup.push(() => removeDir(cwd));
  const config = join(cwd, 'cairn.config.json');
  writeFileSync(config, JSON.stringify({ store: backend.storeConfig('pointer-cli'), snapshots: { everyRecords: 1000, retain: 2, concurrency: 4 } }));
  const store = createStore(loadConfig({ file: config }).store);
  cleanup.push(() => store.close());
  const repo = new SnapshotRepository(store, { retain: 3, concurrency: 4 });
  const state = await PartitionState.open(join(cwd, 'state', P), { writeBufferSize: 64 * 1024, partition: P });
  const snaps: SnapshotMetadata[] = [];
  try {
    for (const lsn of lsns) {
      await state.commit(writesAt(lsn, 40, 200), lsn);
      const capture = await state.capture(join(cwd, 'staging', `c${lsn}`));
      try {
        const r = await repo.checkpoint(capture, { partition: P, node: 'n1', source: `embedded:${P}` });
        expect(r.status).toBe('published');
        snaps.push(r.metadata);
      } finally {
        await capture.release();
      }
    }
  } finally {
    await state.close();
  }
  return { cwd, store, cli: (...args: string[]) => runCli(args, { cwd }), snaps };
}

const pathOf = (m: { snapshotId: string; lsn: number }) => layout.snapshotPath(P, m.snapshotId, m.lsn);
const modelAt = (lsns: number[], lsn: number) => sortedEntries(modelOf(lsns.filter((l) => l <= lsn), 40, 200));

/** Every object with a hash of its bytes: equal listings mean nothing was written or deleted. */
async function storeListing(store: ObjectStore): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for await (const obj of store.list('')) out.push([obj.key, createHash('sha256').update((await store.get(obj.key)).body).digest('hex')]);
  return out;
}

function errorOf(r: CliResult): { code: string } {
  return (JSON.parse(r.stdout) as { error: { code: string } }).error;
}

describe.each(BACKENDS)('cairn pointer rebuild on $name', (backend) => {
  it('a garbage latest.json: list, restore --snapshot and prune behave; rebuild dry run, then --apply, repairs it', async () => {
    const lsns = [10, 20, 30];
    const { store, cli, snaps, cwd } = await setup(backend, lsns);
    const [s10, s20, s30] = snaps;
    await store.put(layout.latest(P), 'garbage{');

    // snapshots list works from the folders alone and says the pointer is unreadable.
    const list = jsonOf(await cli('--json', 'snapshots', 'list', '--partition', P));
    expect(list.pointer).toMatchObject({ ok: false, exists: true });
    expect(list.snapshots.map((s: { path: string }) => s.path)).toEqual([s30!, s20!, s10!].map(pathOf));
    for (const s of list.snapshots) expect(s).toMatchObject({ complete: true, retained: false, latest: false });
    expect((await cli('snapshots', 'list', '--partition', P)).code).toBe(0);

    // restore --snapshot works from the snapshot's folder; without it, CORRUPT.
    const named = jsonOf(await cli('--json', 'restore', '--partition', P, '--snapshot', s20!.snapshotId, '--to', 'named'));
    expect(named).toMatchObject({ snapshotId: s20!.snapshotId, lsn: 20 });
    expect((await dumpState(join(cwd, 'named'))).entries).toEqual(modelAt(lsns, 20));
    const unnamed = await cli('--json', 'restore', '--partition', P, '--to', 'unnamed');
    expect(unnamed.code).toBe(1);
    expect(errorOf(unnamed).code).toBe('CORRUPT');

    // prune refuses and deletes nothing.
    const before = await storeListing(store);
    const pruned = await cli('--json', 'prune', '--partition', P, '--keep', '1');
    expect(pruned.code).toBe(1);
    expect(errorOf(pruned).code).toBe('CORRUPT');
    expect(await storeListing(store)).toEqual(before);

    // The dry run writes nothing and shows the newest snapshot.
    const dry = jsonOf(await cli('--json', 'pointer', 'rebuild', '--partition', P));
    expect(await storeListing(store)).toEqual(before);
    expect(dry).toMatchObject({ partition: P, dryRun: true, written: false, current: { ok: false }, pointer: { snapshotId: s30!.snapshotId, lsn: 30, path: pathOf(s30!) } });
    expect(typeof dry.current.error).toBe('string');
    // Config retain 2: it verifies the two newest and stops.
    expect(dry.considered).toEqual([
      { path: pathOf(s30!), snapshotId: s30!.snapshotId, lsn: 30, ok: true },
      { path: pathOf(s20!), snapshotId: s20!.snapshotId, lsn: 20, ok: true },
    ]);
    expect(latestSchema.safeParse(dry.pointer).success).toBe(true);
    const human = await cli('pointer', 'rebuild', '--partition', P);
    expect(human.code, human.stderr).toBe(0);
    expect(await storeListing(store)).toEqual(before);

    // --apply writes it; --retain overrides the config.
    const applied = jsonOf(await cli('--json', 'pointer', 'rebuild', '--partition', P, '--apply', '--retain', '3'));
    expect(applied).toMatchObject({ dryRun: false, written: true });
    expect(Object.keys(applied).sort()).toEqual(['considered', 'current', 'dryRun', 'partition', 'pointer', 'status', 'written']);
    const stored = latestSchema.parse(JSON.parse((await store.get(layout.latest(P))).body.toString()));
    expect(stored).toEqual(applied.pointer);
    expect(stored.retained.map((e) => e.snapshotId)).toEqual([s30!, s20!, s10!].map((m) => m.snapshotId));

    // Now it is right: nothing to do, nothing written.
    const after = await storeListing(store);
    const again = jsonOf(await cli('--json', 'pointer', 'rebuild', '--partition', P, '--apply'));
    expect(again).toMatchObject({ status: 'nothing-to-do', written: false, current: { ok: true, lsn: 30 } });
    expect(await storeListing(store)).toEqual(after);

    // Restore without --snapshot works again, and the list shows the pointer.
    const restored = jsonOf(await cli('--json', 'restore', '--partition', P, '--to', 'latest'));
    expect(restored).toMatchObject({ snapshotId: s30!.snapshotId, lsn: 30 });
    expect((await dumpState(join(cwd, 'latest'))).entries).toEqual(modelAt(lsns, 30));
    const listed = jsonOf(await cli('--json', 'snapshots', 'list', '--partition', P));
    expect(listed.pointer).toMatchObject({ ok: true, lsn: 30 });
    expect(listed.snapshots[0]).toMatchObject({ latest: true, retained: true });
  });

  it('skips a corrupt newest snapshot, refuses to move a readable pointer backwards, NO_SNAPSHOT when nothing verifies', async () => {
    const { store, cli, snaps } = await setup(backend, [10, 20]);
    const [s10, s20] = snaps;
    // Flip one byte of a table the newest snapshot holds in its own folder.
    const victim = s20!.files.find((f) => isTableFile(f.name) && f.key.startsWith(`${pathOf(s20!)}/`))!;
    const { body } = await store.get(victim.key);
    body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
    await store.put(victim.key, body);

    // The readable pointer names LSN 20; the newest that verifies is 10: refused, nothing written.
    const before = await storeListing(store);
    const back = await cli('--json', 'pointer', 'rebuild', '--partition', P, '--apply');
    expect(back.code).toBe(1);
    expect(errorOf(back).code).toBe('CONDITION_FAILED');
    expect(await storeListing(store)).toEqual(before);

    // With a garbage pointer, it moves to the snapshot that verifies and says why it skipped 20.
    await store.put(layout.latest(P), 'garbage{');
    const r = jsonOf(await cli('--json', 'pointer', 'rebuild', '--partition', P, '--apply'));
    expect(r.considered).toMatchObject([
      { lsn: 20, ok: false, problems: [{ name: victim.name, problem: 'sha256' }] },
      { lsn: 10, ok: true },
    ]);
    expect(typeof r.considered[0].reason).toBe('string');
    expect(r.pointer).toMatchObject({ snapshotId: s10!.snapshotId, lsn: 10 });
    expect(r.pointer.retained.map((e: { lsn: number }) => e.lsn)).toEqual([10]);

    // Nothing verifies: NO_SNAPSHOT, exit 1, the garbage stays.
    const t10 = s10!.files.find((f) => isTableFile(f.name))!;
    const b10 = (await store.get(t10.key)).body;
    b10[0] = b10[0]! ^ 0xff;
    await store.put(t10.key, b10);
    await store.put(layout.latest(P), 'garbage{');
    const garbage = await storeListing(store);
    const none = await cli('--json', 'pointer', 'rebuild', '--partition', P, '--apply');
    expect(none.code).toBe(1);
    expect(errorOf(none).code).toBe('NO_SNAPSHOT');
    expect(await storeListing(store)).toEqual(garbage);
  });
});

describe('cairn pointer rebuild usage', () => {
  it('--help exits 0; bad --retain, a missing or invalid partition exit 2 and write nothing', async () => {
    const cwd = tempDir('cairn-pointer-usage-');
    cleanup.push(() => removeDir(cwd));
    writeFileSync(join(cwd, 'cairn.config.json'), JSON.stringify({ store: { url: 'file://./store' } }));
    const cli = (...args: string[]) => runCli(args, { cwd });

    const help = await cli('pointer', 'rebuild', '--help');
    expect(help.code).toBe(0);
    for (const flag of ['--partition', '--apply', '--retain']) expect(help.stdout).toContain(flag);
    expect((await cli('pointer', '--help')).code).toBe(0);
    expect((await cli('--help')).stdout).toContain('pointer');

    for (const retain of ['0', '-1', '1.5', 'abc', '']) {
      const r = await cli('--json', 'pointer', 'rebuild', '--partition', P, `--retain=${retain}`);
      expect(r.code, `--retain=${retain}`).toBe(2);
    }
    const bad = await cli('--json', 'pointer', 'rebuild', '--partition', P, '--retain', 'x');
    expect(errorOf(bad).code).toBe('BAD_INPUT');
    expect((await cli('pointer', 'rebuild')).code).toBe(2);
    expect((await cli('pointer', 'rebuild', '--apply')).code).toBe(2);
    const invalid = await cli('--json', 'pointer', 'rebuild', '--partition', 'Bad/Name', '--apply');
    expect(invalid.code).toBe(2);
    expect(errorOf(invalid).code).toBe('BAD_INPUT');

    // An empty store: NO_SNAPSHOT, exit 1.
    const empty = await cli('--json', 'pointer', 'rebuild', '--partition', P, '--apply');
    expect(empty.code).toBe(1);
    expect(errorOf(empty).code).toBe('NO_SNAPSHOT');
  });
});
