import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createFork } from '../../src/forks/fork.js';
import { dropFork } from '../../src/forks/fork-admin.js';
import { pruneSnapshots } from '../../src/snapshots/prune.js';
import { layout } from '../../src/snapshots/layout.js';
import { SnapshotRepository } from '../../src/snapshots/repository.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { DELETE, type StateWrite } from '../../src/state/types.js';
import type { ObjectStore } from '../../src/store/types.js';
import { expectCode } from '../helpers/fixtures.js';
import { SMALL_MEMTABLE, dumpState, entriesOf, fsStore, normalise, removeDir, sortedEntries, tempDir } from '../helpers/snapshot-fixtures.js';
import { listAll, missingFiles, rawMetadata, rawPins, rawPointer, readableRoots, unreferencedObjects } from '../helpers/snapshot-references.js';

/**
 * Model-based property test of snapshots.sharing on the filesystem store. A partition p0 and
 * its forks (and forks of forks) each have a real PartitionState (64 KiB memtable: many
 * tables, most of them unchanged between checkpoints) and an in-memory model. Interleaved at
 * random: writes followed by a checkpoint (retain 2..4, eviction grace 0 or an hour), a
 * switch of the repository between "copy" and "shared", fork create from any retained
 * snapshot of p0 or of a fork, fork drop, prune (keep 1..3), the collector with no grace,
 * restores of any retained snapshot.
 *
 * After every command, read with an oracle that uses none of the snapshot code
 * (helpers/snapshot-references.ts): every snapshot latest.json lists (retained and evicted)
 * and every pinned one, of p0 and of every fork, has every file its metadata names in the
 * store with the recorded size; the pointer is at the model's last published LSN; every few
 * commands the latest snapshot of every partition restores to exactly the model at its LSN.
 * After the collector: nothing under the collected partition's snapshot folders is left that
 * no readable snapshot references (the collector is complete, not just safe).
 */

const NUM_RUNS = Number(process.env.CAIRN_SHARING_RUNS ?? 30);
const P = 'p0';
const HOUR = 3_600_000;
const BULK_KEYS = 300;
const PAD = 'x'.repeat(300);
const MAX_FORKS = 3;
/** Latest snapshots of every partition are restored and compared every this many commands. */
const RESTORE_EVERY = 3;

type Sharing = 'copy' | 'shared';

interface PartModel {
  name: string;
  /** The partition (p0 or a fork) this fork was made from. */
  parent?: string;
  data: Map<string, unknown>;
  lsn: number;
  /** The state at every published LSN of this partition. */
  published: Map<number, Map<string, unknown>>;
  lastPublishedLsn: number;
}

interface Model {
  sharing: Sharing;
  parts: Map<string, PartModel>;
  forkSeq: number;
  steps: number;
}

interface Stats {
  runs: number;
  commands: number;
  published: number;
  superseded: number;
  referencedBytes: number;
  copiedBytes: number;
  /** Published snapshots with a file in another snapshot's folder. */
  sharedSnapshots: number;
  /** Fork checkpoints that reference files in an ancestor partition's folders. */
  forkReferencesParent: number;
  forks: number;
  forkCheckpoints: number;
  drops: number;
  refusedDrops: number;
  pinsReleased: number;
  prunedFolders: number;
  gcRuns: number;
  gcDeleted: number;
  gcKeptShared: number;
  restores: number;
  switches: number;
}

const newStats = (): Stats => ({
  runs: 0,
  commands: 0,
  published: 0,
  superseded: 0,
  referencedBytes: 0,
  copiedBytes: 0,
  sharedSnapshots: 0,
  forkReferencesParent: 0,
  forks: 0,
  forkCheckpoints: 0,
  drops: 0,
  refusedDrops: 0,
  pinsReleased: 0,
  prunedFolders: 0,
  gcRuns: 0,
  gcDeleted: 0,
  gcKeptShared: 0,
  restores: 0,
  switches: 0,
});
const totals = newStats();

interface Real {
  root: string;
  store: ObjectStore;
  repo: SnapshotRepository;
  states: Map<string, PartitionState>;
  seq: number;
  stats: Stats;
}

const repositoryFor = (store: ObjectStore, sharing: Sharing, retain = 3, evictionGraceMs = 0) => new SnapshotRepository(store, { retain, concurrency: 4, evictionGraceMs, sharing });

/** Partitions in creation order (p0 first), so a generated index picks the same one on replay. */
function partAt(m: Model, index: number): PartModel {
  const all = [...m.parts.values()];
  return all[index % all.length]!;
}

function forkAt(m: Model, index: number): PartModel | undefined {
  const forks = [...m.parts.values()].filter((p) => p.parent !== undefined);
  return forks.length === 0 ? undefined : forks[index % forks.length];
}

type WriteSpec =
  | { kind: 'none' }
  /** A few keys of the bulk range: small churn, most tables unchanged. */
  | { kind: 'churn'; keys: number[]; tag: number; del: boolean }
  /** Enough bytes to overflow the memtable: new tables (and compactions). */
  | { kind: 'bulk'; from: number; count: number; tag: number; deleteEvery: number };

function batchOf(spec: WriteSpec): Map<string, StateWrite> {
  const batch = new Map<string, StateWrite>();
  const key = (n: number) => `bulk/${String(n % BULK_KEYS).padStart(3, '0')}`;
  if (spec.kind === 'churn') spec.keys.forEach((n, i) => batch.set(key(n), spec.del && i === 0 ? DELETE : { tag: spec.tag, n, pad: PAD }));
  if (spec.kind === 'bulk') {
    for (let i = 0; i < spec.count; i++) batch.set(key(spec.from + i), spec.deleteEvery > 0 && i % spec.deleteEvery === 0 ? DELETE : { tag: spec.tag, n: (spec.from + i) % BULK_KEYS, pad: PAD });
  }
  return batch;
}

function applyToModel(data: Map<string, unknown>, writes: ReadonlyMap<string, StateWrite>): void {
  for (const [k, v] of writes) {
    if (v === DELETE) data.delete(k);
    else data.set(k, normalise(v));
  }
}

/** Restores `snapshotId` (default: the latest) of `part` into a fresh folder and compares it with the model. */
async function restoreAndCompare(m: Model, r: Real, part: PartModel, snapshotId?: string): Promise<void> {
  const targetDir = join(r.root, 'restore', `r${r.seq++}`, part.name);
  const result = await r.repo.restore({ partition: part.name, targetDir, ...(snapshotId ? { snapshotId } : {}) });
  r.stats.restores++;
  expect(result.skipped).toEqual([]);
  if (!snapshotId) expect(result.metadata.lsn).toBe(part.lastPublishedLsn);
  const expected = part.published.get(result.metadata.lsn);
  expect(expected, `a model of ${part.name} at LSN ${result.metadata.lsn}`).toBeDefined();
  const dump = await dumpState(targetDir);
  expect(dump.lsn).toBe(result.metadata.lsn);
  expect(dump.entries).toEqual(sortedEntries(expected!));
  await removeDir(join(r.root, 'restore'));
}

/** The invariants after every command; see the header. */
async function checkInvariants(m: Model, r: Real, restoreLatest: boolean): Promise<void> {
  for (const part of m.parts.values()) {
    const pointer = await rawPointer(r.store, part.name);
    if (part.lastPublishedLsn < 0) {
      expect(pointer).toBeUndefined();
      continue;
    }
    expect(pointer?.lsn, `${part.name}: latest.json at the last published LSN`).toBe(part.lastPublishedLsn);
    for (const e of [...pointer!.retained, ...(pointer!.evicted ?? [])]) expect(part.published.has(e.lsn), `${part.name}: a model for listed LSN ${e.lsn}`).toBe(true);
    const roots = await readableRoots(r.store, part.name);
    expect(await missingFiles(r.store, roots), `${part.name}: files of readable snapshots`).toEqual([]);
    if (restoreLatest) await restoreAndCompare(m, r, part);
  }
}

class WriteCheckpointCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly target: number,
    readonly writes: WriteSpec,
    readonly compact: boolean,
    readonly retain: number,
    readonly longGrace: boolean,
    /** Aim at a fork (p0 while there is none): forks need checkpoints of their own to lose their pins. */
    readonly forkOnly = false,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const part = (this.forkOnly ? forkAt(m, this.target) : undefined) ?? partAt(m, this.target);
    const state = r.states.get(part.name)!;
    const batch = batchOf(this.writes);
    if (batch.size > 0) {
      const lsn = part.lsn + 1;
      await state.commit(batch, lsn);
      applyToModel(part.data, batch);
      part.lsn = lsn;
    }
    if (this.compact) await state.compactAll();
    expect(await entriesOf(state)).toEqual(sortedEntries(part.data));
    if (part.lsn < 0) return; // nothing applied yet: nothing to checkpoint (property.test.ts covers the refusal)

    const before = await rawPointer(r.store, part.name);
    const previous = before ? (await rawMetadata(r.store, before.path)).files : [];
    const pinnedBefore = part.parent ? (await rawPins(r.store, part.parent)).some((p) => p.fork === part.name) : false;
    const repo = repositoryFor(r.store, m.sharing, this.retain, this.longGrace ? HOUR : 0);
    const capture = await state.capture(join(r.root, 'staging', `c${r.seq++}`));
    let result;
    try {
      result = await repo.checkpoint(capture, { partition: part.name, node: 'n1', source: `embedded:${part.name}` });
    } finally {
      await capture.release();
    }
    if (part.lsn <= part.lastPublishedLsn) {
      expect(result.status).toBe('superseded');
      r.stats.superseded++;
      return;
    }
    expect(result.status).toBe('published');
    r.stats.published++;
    if (part.parent) r.stats.forkCheckpoints++;
    part.published.set(part.lsn, new Map(part.data));
    part.lastPublishedLsn = part.lsn;

    // Where each file went, by mode: "copy" keeps every file in the snapshot's own folder;
    // "shared" references exactly the unchanged tables where the previous snapshot has them.
    const meta = result.metadata;
    const own = `${layout.snapshotPath(part.name, meta.snapshotId, meta.lsn)}/`;
    const prior = new Map(previous.map((f) => [f.name, f]));
    let referenced = 0;
    for (const f of meta.files) {
      if (f.key.startsWith(own)) {
        expect(f.key).toBe(`${own}${f.name}`);
        continue;
      }
      expect(m.sharing, `${f.key} outside ${own} in copy mode`).toBe('shared');
      const p = prior.get(f.name);
      expect(p, `${f.name} referenced but not in the previous snapshot`).toBeDefined();
      expect({ key: f.key, size: f.size, sha256: f.sha256 }).toEqual({ key: p!.key, size: p!.size, sha256: p!.sha256 });
      referenced += f.size;
    }
    expect(meta.stats.referencedBytes).toBe(referenced);
    if (m.sharing === 'shared') expect(meta.stats.copiedBytes).toBe(0);
    expect(meta.stats.uploadedBytes + meta.stats.copiedBytes + meta.stats.referencedBytes).toBe(meta.files.reduce((n, f) => n + f.size, 0));
    r.stats.referencedBytes += meta.stats.referencedBytes;
    r.stats.copiedBytes += meta.stats.copiedBytes;
    if (referenced > 0) r.stats.sharedSnapshots++;
    if (meta.files.some((f) => !f.key.startsWith(`${part.name}/`))) r.stats.forkReferencesParent++;
    if (pinnedBefore && !(await rawPins(r.store, part.parent!)).some((p) => p.fork === part.name)) {
      r.stats.pinsReleased++;
      // The pin goes only once no readable snapshot of the fork needs an ancestor's files.
      for (const path of await readableRoots(r.store, part.name)) {
        for (const f of (await rawMetadata(r.store, path)).files) expect(f.key.startsWith(`${part.name}/`), `${f.key} of ${path} after the pin went`).toBe(true);
      }
    }
  }
  toString = () => `write+checkpoint(${this.forkOnly ? 'fork ' : ''}#${this.target}, ${JSON.stringify(this.writes)}, compact ${this.compact}, retain ${this.retain}, grace ${this.longGrace ? '1h' : '0'})`;
}

class SwitchSharingCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly sharing: Sharing) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    m.sharing = this.sharing;
    r.repo = repositoryFor(r.store, this.sharing);
    r.stats.switches++;
  }
  toString = () => `sharing ${this.sharing}`;
}

class ForkCreateCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly source: number,
    readonly entry: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    if (m.parts.size > MAX_FORKS) return;
    const from = partAt(m, this.source);
    const pointer = await rawPointer(r.store, from.name);
    if (!pointer) return;
    const entry = pointer.retained[this.entry % pointer.retained.length]!;
    const name = `f${m.forkSeq++}`;
    const created = await createFork(r.store, { from: from.name, at: { kind: 'snapshot', snapshotId: entry.snapshotId }, name, node: 'n1' });
    expect(created).toMatchObject({ fork: name, lsn: entry.lsn, parent: { partition: from.name, snapshotId: entry.snapshotId } });
    const data = new Map(from.published.get(entry.lsn)!);
    const fork: PartModel = { name, parent: from.name, data, lsn: entry.lsn, published: new Map([[entry.lsn, new Map(data)]]), lastPublishedLsn: entry.lsn };
    m.parts.set(name, fork);
    r.stats.forks++;
    // The fork's own live state: its first snapshot restored, as a node opening the fork would.
    const dir = join(r.root, 'state', name);
    await r.repo.restore({ partition: name, targetDir: dir });
    r.states.set(name, await PartitionState.open(dir, { writeBufferSize: SMALL_MEMTABLE, partition: name }));
    expect(await entriesOf(r.states.get(name)!)).toEqual(sortedEntries(data));
  }
  toString = () => `fork create(from #${this.source}, retained #${this.entry})`;
}

class ForkDropCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly target: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const fork = forkAt(m, this.target);
    if (!fork) return;
    // Refused while a fork of it pins one of its snapshots; a fork of it that owns all its
    // files (its pin released) does not hold it back.
    const pinned = (await rawPins(r.store, fork.name)).length > 0;
    expect(pinned).toBe(pinned && [...m.parts.values()].some((p) => p.parent === fork.name));
    if (pinned) {
      await expectCode(() => dropFork(r.store, fork.name), 'BAD_INPUT');
      r.stats.refusedDrops++;
      return;
    }
    await r.states.get(fork.name)!.close();
    r.states.delete(fork.name);
    await dropFork(r.store, fork.name);
    m.parts.delete(fork.name);
    r.stats.drops++;
    expect([...(await listAll(r.store, `${fork.name}/`)).keys()]).toEqual([]);
    expect((await rawPins(r.store, fork.parent!)).some((p) => p.fork === fork.name)).toBe(false);
  }
  toString = () => `fork drop(#${this.target})`;
}

class PruneCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly target: number,
    readonly keep: number,
    readonly longGrace: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const part = partAt(m, this.target);
    const before = await rawPointer(r.store, part.name);
    const result = await pruneSnapshots(r.store, part.name, this.keep, { evictionGraceMs: this.longGrace ? HOUR : 0 });
    r.stats.prunedFolders += result.deleted.length;
    const after = await rawPointer(r.store, part.name);
    // Never the latest; nothing it deleted is still listed.
    expect(after?.path).toBe(before?.path);
    const listed = new Set([...(after?.retained ?? []), ...(after?.evicted ?? [])].map((e) => e.path));
    for (const path of result.deleted) expect(listed.has(path), `${path} pruned but listed`).toBe(false);
  }
  toString = () => `prune(#${this.target}, keep ${this.keep}, grace ${this.longGrace ? '1h' : '0'})`;
}

class GcCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly target: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const part = partAt(m, this.target);
    if (part.lastPublishedLsn < 0) {
      await expectCode(() => r.repo.collectGarbage(part.name, { graceMs: 0 }), 'NO_SNAPSHOT');
      return;
    }
    const result = await r.repo.collectGarbage(part.name, { graceMs: 0 });
    r.stats.gcRuns++;
    r.stats.gcDeleted += result.deleted.length;
    r.stats.gcKeptShared += result.shared.length;
    // Complete: what is left under the partition's folders is exactly what readable snapshots need.
    expect(await unreferencedObjects(r.store, part.name)).toEqual([]);
  }
  toString = () => `gc(#${this.target})`;
}

class RestoreCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly target: number,
    readonly entry: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const part = partAt(m, this.target);
    const pointer = await rawPointer(r.store, part.name);
    if (!pointer) return;
    const listed = [...pointer.retained, ...(pointer.evicted ?? [])];
    await restoreAndCompare(m, r, part, listed[this.entry % listed.length]!.snapshotId);
  }
  toString = () => `restore(#${this.target}, listed #${this.entry})`;
}

/** Runs `inner`, then the invariants (with restores every few commands). */
class Checked implements fc.AsyncCommand<Model, Real> {
  constructor(readonly inner: fc.AsyncCommand<Model, Real>) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    await this.inner.run(m, r);
    m.steps++;
    await checkInvariants(m, r, m.steps % RESTORE_EVERY === 0);
  }
  toString = () => this.inner.toString();
}

const writeArb: fc.Arbitrary<WriteSpec> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<WriteSpec>({ kind: 'none' }) },
  {
    weight: 4,
    arbitrary: fc.record({ keys: fc.array(fc.nat(BULK_KEYS - 1), { minLength: 1, maxLength: 4 }), tag: fc.nat(1000), del: fc.boolean() }).map((w): WriteSpec => ({ kind: 'churn', ...w })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ from: fc.nat(BULK_KEYS - 1), count: fc.integer({ min: 80, max: 260 }), tag: fc.nat(1000), deleteEvery: fc.constantFrom(0, 0, 5, 9) })
      .map((w): WriteSpec => ({ kind: 'bulk', ...w })),
  },
);

const index = fc.nat(7);
const commands = [
  fc.tuple(index, writeArb, fc.nat(5).map((n) => n === 0), fc.integer({ min: 2, max: 4 }), fc.boolean()).map(([t, w, c, k, g]) => new Checked(new WriteCheckpointCommand(t, w, c, k, g))),
  fc.tuple(index, writeArb, fc.nat(5).map((n) => n === 0), fc.integer({ min: 2, max: 4 }), fc.boolean()).map(([t, w, c, k, g]) => new Checked(new WriteCheckpointCommand(t, w, c, k, g))),
  fc.tuple(fc.constant(0), writeArb, fc.constant(false), fc.integer({ min: 2, max: 4 }), fc.boolean()).map(([t, w, c, k, g]) => new Checked(new WriteCheckpointCommand(t, w, c, k, g))),
  fc.tuple(index, writeArb, fc.nat(5).map((n) => n === 0), fc.integer({ min: 2, max: 4 }), fc.boolean()).map(([t, w, c, k, g]) => new Checked(new WriteCheckpointCommand(t, w, c, k, g, true))),
  fc.tuple(index, writeArb, fc.nat(5).map((n) => n === 0), fc.integer({ min: 2, max: 4 }), fc.boolean()).map(([t, w, c, k, g]) => new Checked(new WriteCheckpointCommand(t, w, c, k, g, true))),
  fc.constantFrom<Sharing>('copy', 'shared').map((s) => new Checked(new SwitchSharingCommand(s))),
  fc.tuple(index, index).map(([s, e]) => new Checked(new ForkCreateCommand(s, e))),
  index.map((t) => new Checked(new ForkDropCommand(t))),
  fc.tuple(index, fc.integer({ min: 1, max: 3 }), fc.boolean()).map(([t, k, g]) => new Checked(new PruneCommand(t, k, g))),
  index.map((t) => new Checked(new GcCommand(t))),
  index.map((t) => new Checked(new GcCommand(t))),
  fc.tuple(index, index).map(([t, e]) => new Checked(new RestoreCommand(t, e))),
];

async function runCommands(list: Array<fc.AsyncCommand<Model, Real>>, into: Stats): Promise<void> {
  const root = await tempDir('sharing-prop');
  await mkdir(join(root, 'state'), { recursive: true });
  const stats = newStats();
  stats.runs = 1;
  stats.commands = list.length;
  const store = fsStore(root, { retry: false });
  const real: Real = { root, store, repo: repositoryFor(store, 'shared'), states: new Map(), seq: 0, stats };
  real.states.set(P, await PartitionState.open(join(root, 'state', P), { writeBufferSize: SMALL_MEMTABLE, partition: P }));
  const model: Model = { sharing: 'shared', parts: new Map([[P, { name: P, data: new Map(), lsn: -1, published: new Map(), lastPublishedLsn: -1 }]]), forkSeq: 0, steps: 0 };
  try {
    await fc.asyncModelRun(() => ({ model, real }), list);
    // Every run ends collected and round-tripped: each partition's every listed snapshot restores.
    for (const part of model.parts.values()) {
      if (part.lastPublishedLsn < 0) continue;
      await new GcCommand([...model.parts.keys()].indexOf(part.name)).run(model, real);
      const pointer = (await rawPointer(store, part.name))!;
      for (const e of [...pointer.retained, ...(pointer.evicted ?? [])]) await restoreAndCompare(model, real, part, e.snapshotId);
    }
    await checkInvariants(model, real, false);
  } finally {
    for (const s of real.states.values()) await s.close().catch(() => undefined);
    await store.close();
    await removeDir(root);
    for (const k of Object.keys(into) as Array<keyof Stats>) into[k] += stats[k];
  }
}

describe('snapshots.sharing: model-based property (fs store)', () => {
  afterAll(() => {
    console.log(`[sharing-property] ${JSON.stringify(totals)}`);
  });

  it(`shared and copy checkpoints, forks, prune and the collector keep every readable snapshot whole (${NUM_RUNS} runs)`, { timeout: 30 * 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'max' }), async (cmds) => {
        await runCommands([...cmds], totals);
      }),
      { numRuns: NUM_RUNS, endOnFailure: !process.env.CAIRN_PROPERTY_SHRINK },
    );
    expect(totals.runs).toBeGreaterThanOrEqual(NUM_RUNS);
    if (NUM_RUNS >= 20) {
      // The generator reaches what the property is about.
      expect(totals.sharedSnapshots).toBeGreaterThan(0);
      expect(totals.forkReferencesParent).toBeGreaterThan(0);
      expect(totals.forkCheckpoints).toBeGreaterThan(0);
      expect(totals.copiedBytes).toBeGreaterThan(0);
      expect(totals.gcDeleted).toBeGreaterThan(0);
      expect(totals.gcKeptShared).toBeGreaterThan(0);
      expect(totals.prunedFolders).toBeGreaterThan(0);
      expect(totals.drops).toBeGreaterThan(0);
      expect(totals.switches).toBeGreaterThan(0);
    }
  });

  it('a fork of a fork that came to own its files lets its parent fork be dropped; the rest stays whole', async () => {
    const churn = (tag: number): WriteSpec => ({ kind: 'churn', keys: [1, 2, 3], tag, del: false });
    const stats = newStats();
    const fork = (index: number, w: WriteSpec) => new Checked(new WriteCheckpointCommand(index, w, false, 2, false, true));
    await runCommands(
      [
        new Checked(new WriteCheckpointCommand(0, { kind: 'bulk', from: 0, count: 260, tag: 1, deleteEvery: 0 }, false, 3, false)),
        new Checked(new WriteCheckpointCommand(0, churn(2), false, 3, false)),
        new Checked(new ForkCreateCommand(0, 0)), // f0, of p0's latest
        fork(0, churn(3)), // f0 references p0's tables
        new Checked(new ForkCreateCommand(1, 0)), // f1, of f0's latest
        new Checked(new ForkDropCommand(0)), // refused: f1 pins f0
        new Checked(new SwitchSharingCommand('copy')),
        fork(1, churn(4)),
        fork(1, churn(5)),
        fork(1, churn(6)), // f1 owns its files: its pin on f0 goes
        new Checked(new ForkDropCommand(0)), // now f0 can go
        new Checked(new SwitchSharingCommand('shared')),
        fork(0, churn(7)), // f1 (the only fork left)
        new Checked(new WriteCheckpointCommand(0, churn(8), false, 2, false)),
        new Checked(new GcCommand(0)),
        new Checked(new GcCommand(1)),
      ],
      stats,
    );
    expect(stats).toMatchObject({ forks: 2, refusedDrops: 1, drops: 1 });
    expect(stats.pinsReleased).toBeGreaterThanOrEqual(1);
  });
});
