import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import { loadConfig } from '../../src/core/config.js';
import type { AppendRecord } from '../../src/log/types.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { bankModel, parseDump, toJsonl } from '../helpers/bank-model.js';
import { REPO_ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { inspectFsSnapshots, readState, seededRandom, sleep, watch, writeConfig, type Watched } from '../helpers/runtime-harness.js';

/**
 * Crash safety of `cairn run`: a worker killed with SIGKILL at any moment (start-up, apply,
 * the synchronous capture, the upload, the pointer update, eviction) leaves
 *   - local state that is exactly "every record up to its stored LSN" (never a torn batch),
 *   - a latest.json that parses and points at complete snapshots (every file present with
 *     its listed size and sha256), whose LSN never moves backwards,
 *   - a latest snapshot that restores to exactly the model state at its LSN,
 * and a restarted worker (from local state or, when we delete it, from the store) ends with
 * exactly the state of one that never crashed.
 *
 * CAIRN_CRASH_TRIALS (default 20) sets the number of kills; CAIRN_CRASH_SEED replays a plan.
 */

const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');
const TRIALS = Math.max(1, Number(process.env.CAIRN_CRASH_TRIALS ?? 20));
const SEED = Number(process.env.CAIRN_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const INITIAL_EVENTS = 3000;
const EVENTS_PER_TRIAL = 1000;
const EVERY_RECORDS = 500;

/** Where a trial's kill is aimed. Cycled, so every kind occurs whatever the trial count. */
const KILL_KINDS = ['startup', 'apply', 'capture', 'upload', 'after-snapshot'] as const;
type KillKind = (typeof KILL_KINDS)[number] | 'bootstrap';
/** Trials right after we delete the local state (see below) that aim at the restore instead. */
const aimAtBootstrap = (trial: number) => trial % 6 === 3;

const CONFIG = {
  store: { url: 'file://./store' },
  log: { type: 'embedded', dir: './log' },
  stateDir: './state',
  snapshots: { everyRecords: EVERY_RECORDS, retain: 2, concurrency: 4 },
  runtime: { batchSize: 100 },
};

/** Polls `probe` every millisecond until it holds or the child exits; resolves whether it held. */
async function until(w: Watched, probe: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (w.isRunning() && Date.now() < deadline) {
    try {
      if (probe()) return true;
    } catch {
      // A folder vanished between readdir and stat: look again.
    }
    await sleep(1);
  }
  return false;
}

/** Waits for a stderr line, or for the child to end first (then resolves false). */
async function line(w: Watched, pattern: RegExp): Promise<boolean> {
  return w.waitForLine(pattern, 30_000).then(
    () => true,
    () => false,
  );
}

/** Brings the kill to the moment `kind` names; returns a short description of where it landed. */
async function aimAndKill(w: Watched, kind: KillKind, rand: () => number, cwd: string): Promise<string> {
  const staging = join(cwd, 'state', '.staging');
  const partitionStore = join(cwd, 'store', 'p0');
  let where: string;
  switch (kind) {
    case 'startup': {
      const ms = Math.round(50 + rand() * 1450);
      await sleep(ms);
      where = `${ms}ms after spawn`;
      break;
    }
    case 'apply': {
      const opened = await line(w, /partition state opened/);
      const ms = Math.round(rand() * 300);
      await sleep(ms);
      where = opened ? `${ms}ms after the state opened` : 'never opened';
      break;
    }
    case 'capture': {
      // The staging folder exists from the start of the sync phase until the upload ends.
      await line(w, /partition state opened/);
      const hit = await until(w, () => existsSync(staging) && readdirSync(staging).length > 0);
      where = hit ? 'with a capture staged' : 'no capture seen';
      break;
    }
    case 'upload': {
      // A new snapshot folder without metadata.json is an upload in progress (older ones
      // without it are what earlier kills left behind).
      const folders = () => (existsSync(partitionStore) ? readdirSync(partitionStore).filter((f) => /_\d+$/.test(f)) : []);
      const before = new Set(folders());
      await line(w, /partition state opened/);
      const hit = await until(w, () => folders().some((f) => !before.has(f) && !existsSync(join(partitionStore, f, 'metadata.json'))));
      where = hit ? 'mid-upload' : 'no upload seen';
      break;
    }
    case 'bootstrap': {
      // The restore downloads into a temporary folder beside the state folder, then renames.
      const stateRoot = join(cwd, 'state');
      const hit = await until(w, () => (existsSync(stateRoot) && readdirSync(stateRoot).some((f) => f.includes('.restore-'))) || /partition state opened/.test(w.stderr()));
      const restoring = hit && !/partition state opened/.test(w.stderr());
      if (!restoring) await sleep(Math.round(rand() * 100));
      where = restoring ? 'mid-restore' : 'after the state opened (no restore seen)';
      break;
    }
    case 'after-snapshot': {
      const seen = await line(w, /snapshot finished/);
      const ms = Math.round(rand() * 40);
      await sleep(ms);
      where = seen ? `${ms}ms after a snapshot finished` : 'no snapshot finished';
      break;
    }
  }
  const running = w.isRunning();
  w.child.kill('SIGKILL');
  const exit = await w.exited;
  return running && exit.signal === 'SIGKILL' ? `killed ${where}` : `completed before the kill (${where}; exit ${exit.code})`;
}

async function appendInProcess(cwd: string, records: AppendRecord[]): Promise<void> {
  // The embedded log is single-process: the worker is dead when we append.
  const log = new EmbeddedLog({ dir: join(cwd, 'log') });
  try {
    await log.append('p0', records);
  } finally {
    await log.close();
  }
}

describe('cairn run under SIGKILL', () => {
  it(`keeps state, snapshots and latest.json consistent across ${TRIALS} kills (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const started = Date.now();
    const rand = seededRandom(SEED);
    const cwd = tempDir('cairn-crash-');
    const configPath = writeConfig(cwd, CONFIG);
    const storeRoot = join(cwd, 'store');
    const events = bankEvents(INITIAL_EVENTS + TRIALS * EVENTS_PER_TRIAL, 4242);
    const cli = (...args: string[]) => runCli(args, { cwd });

    writeFileSync(join(cwd, 'initial.jsonl'), toJsonl(events.slice(0, INITIAL_EVENTS)));
    const appended = await cli('--json', 'log', 'append', '--partition', 'p0', '--jsonl', 'initial.jsonl');
    expect(appended.code, appended.stderr).toBe(0);
    let logEnd = INITIAL_EVENTS;

    const cairn = new Cairn(loadConfig({ file: configPath }));
    const outcomes: string[] = [];
    let killed = 0;
    /** Lowest LSN local state may hold now (raised by every observation, lowered only by our deletes). */
    let stateFloor = -1;
    let pointerLsn = -1;
    let stateMayBeMissing = true;
    const localDir = join(cwd, 'state', 'p0');

    try {
      for (let trial = 0; trial < TRIALS; trial++) {
        const kind: KillKind = aimAtBootstrap(trial) ? 'bootstrap' : KILL_KINDS[trial % KILL_KINDS.length]!;
        const context = `trial ${trial} (${kind}, seed ${SEED})`;
        const w = watch(spawnCli(['run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end'], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } }));
        const outcome = await aimAndKill(w, kind, rand, cwd);
        if (outcome.startsWith('killed')) killed++;
        else expect(w.stderr(), `${context}: a run that was not killed must succeed`).not.toMatch(/"level":(50|60)/);

        // 1. Local state: exactly the model at its own LSN, never behind what we saw before
        // (read with `cairn state dump` on even trials, in-process on odd ones, for time).
        if (existsSync(join(localDir, 'CURRENT'))) {
          let dumped: { lsn: number; entries: Map<string, unknown> };
          if (trial % 2 === 0) {
            const dump = await cli('state', 'dump', '--partition', 'p0');
            expect(dump.code, `${context}: ${dump.stderr}`).toBe(0);
            dumped = parseDump(dump.stdout);
          } else {
            dumped = await readState(localDir);
          }
          const { lsn, entries } = dumped;
          expect(lsn, `${context}: state LSN went backwards`).toBeGreaterThanOrEqual(stateFloor);
          expect(lsn, context).toBeLessThan(logEnd);
          expect(entries, `${context}: state at LSN ${lsn} differs from the model`).toEqual(bankModel(events, lsn));
          stateFloor = lsn;
          stateMayBeMissing = false;
        } else {
          // Only a worker killed before it ever created state, or while bootstrapping after we
          // deleted the folder, may leave none; a bootstrap never leaves a half-restored folder.
          expect(stateMayBeMissing, `${context}: local state disappeared`).toBe(true);
        }

        // 2. The store: latest.json parses; the latest and every retained snapshot are complete.
        const { pointer, problems } = inspectFsSnapshots(storeRoot, 'p0');
        expect(problems, context).toEqual([]);
        if (pointer) {
          expect(pointer.lsn, `${context}: latest.json moved backwards`).toBeGreaterThanOrEqual(pointerLsn);
          if (!stateMayBeMissing) expect(stateFloor, `${context}: local state is behind its own snapshot`).toBeGreaterThanOrEqual(pointer.lsn);
          pointerLsn = pointer.lsn;

          // 3. The latest snapshot restores to exactly the model at its LSN (through the CLI on
          // every fifth trial, through the library otherwise, to keep the suite quick).
          const target = join(cwd, 'restored', String(trial));
          if (trial % 5 === 4) {
            const [restored, verified] = await Promise.all([cli('--json', 'restore', '--partition', 'p0', '--to', target), cli('--json', 'verify', '--partition', 'p0')]);
            expect(restored.code, `${context}: ${restored.stderr}`).toBe(0);
            expect(JSON.parse(restored.stdout)).toMatchObject({ lsn: pointer.lsn, fellBackFrom: [] });
            expect(verified.code, `${context}: ${verified.stdout}`).toBe(0);
          } else {
            const restored = await cairn.snapshots.restore({ partition: 'p0', targetDir: target });
            expect(restored.skipped, context).toEqual([]);
            expect(restored.metadata.lsn, context).toBe(pointer.lsn);
          }
          const copy = await readState(target);
          expect(copy.lsn, context).toBe(pointer.lsn);
          expect(copy.entries, `${context}: snapshot at LSN ${pointer.lsn} differs from the model`).toEqual(bankModel(events, pointer.lsn));
          rmSync(target, { recursive: true, force: true });
        } else {
          expect(pointerLsn, `${context}: latest.json disappeared`).toBe(-1);
        }

        // Every third trial loses its disk: the next worker must bootstrap from the store.
        if (trial % 3 === 2) {
          rmSync(localDir, { recursive: true, force: true });
          stateMayBeMissing = true;
          stateFloor = pointerLsn;
        }
        outcomes.push(`${context}: ${outcome}; state LSN ${stateMayBeMissing ? '-' : stateFloor}, latest ${pointerLsn}`);

        await appendInProcess(cwd, events.slice(logEnd, logEnd + EVENTS_PER_TRIAL));
        logEnd += EVENTS_PER_TRIAL;
      }
      expect(logEnd).toBe(events.length);

      // A last, uninterrupted run ends exactly where a worker that never crashed would.
      const final = await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end');
      expect(final.code, final.stderr).toBe(0);
      expect(JSON.parse(final.stdout)).toMatchObject({ appliedLsn: events.length - 1, stoppedBy: 'end-of-log' });
      const dump = parseDump((await cli('state', 'dump', '--partition', 'p0')).stdout);
      expect(dump.lsn).toBe(events.length - 1);
      expect(dump.entries).toEqual(bankModel(events));
      const end = inspectFsSnapshots(storeRoot, 'p0');
      expect(end.problems).toEqual([]);
      expect(end.pointer!.lsn).toBeGreaterThanOrEqual(pointerLsn);
      // Captures and restores that killed workers left half-done are cleaned up by the next one.
      const staging = join(cwd, 'state', '.staging');
      expect(existsSync(staging) ? readdirSync(staging) : [], 'stale staging folders').toEqual([]);
      expect(readdirSync(join(cwd, 'state')).filter((f) => f !== '.staging'), 'stale restore folders').toEqual(['p0']);
    } finally {
      await cairn.close();
      console.log(
        [
          `crash trials: seed ${SEED}, ${killed}/${outcomes.length} killed mid-run, ${Math.round((Date.now() - started) / 1000)} s`,
          ...outcomes,
          `leftovers: state/.staging ${existsSync(join(cwd, 'state', '.staging')) ? readdirSync(join(cwd, 'state', '.staging')).length : 0}, ` +
            `restore temps ${existsSync(join(cwd, 'state')) ? readdirSync(join(cwd, 'state')).filter((f) => f.includes('.restore-')).length : 0}, ` +
            `incomplete snapshot folders in the store ${
              existsSync(join(storeRoot, 'p0')) ? readdirSync(join(storeRoot, 'p0')).filter((f) => /_\d+$/.test(f) && !existsSync(join(storeRoot, 'p0', f, 'metadata.json'))).length : 0
            }`,
        ].join('\n'),
      );
    }
    // The plan aims every kill at a running worker; a few may finish first, most must not.
    expect(killed, outcomes.join('\n')).toBeGreaterThanOrEqual(Math.ceil(TRIALS * 0.6));
    rmSync(cwd, { recursive: true, force: true });
  });

  it('stops cleanly with exit 0 on SIGTERM and SIGINT, state consistent and resumable', { timeout: 120_000 }, async () => {
    const cwd = tempDir('cairn-signal-');
    writeConfig(cwd, CONFIG);
    mkdirSync(join(cwd, 'in'));
    const events = bankEvents(20_000, 99);
    writeFileSync(join(cwd, 'in', 'events.jsonl'), toJsonl(events));
    const cli = (...args: string[]) => runCli(args, { cwd });
    expect((await cli('log', 'append', '--partition', 'p0', '--jsonl', 'in/events.jsonl')).code).toBe(0);

    let previous = -1;
    // SIGTERM mid-apply, SIGINT mid-apply, then SIGTERM once caught up and idle.
    for (const [signal, opened, delay] of [
      ['SIGTERM', /partition state opened/, 300],
      ['SIGINT', /partition state opened/, 150],
      ['SIGTERM', /partition state opened/, 4000],
    ] as const) {
      const w = watch(spawnCli(['--json', 'run', '--partition', 'p0', '--processor', PROCESSOR], { cwd, env: { CAIRN_LOG_LEVEL: 'info' } }));
      await w.waitForLine(opened);
      await sleep(delay);
      const sent = Date.now();
      w.child.kill(signal);
      const exit = await w.exited;
      const context = `${signal} after ${delay} ms: ${w.stderr().slice(-1500)}`;
      expect(exit, context).toEqual({ code: 0, signal: null });
      expect(Date.now() - sent, context).toBeLessThan(10_000);
      expect(w.stderr(), context).toMatch(/stopping after the current batch/);
      const summary = JSON.parse(w.stdout());
      expect(summary, context).toMatchObject({ stoppedBy: 'signal', start: { lsn: previous } });
      expect(summary.appliedLsn).toBeGreaterThanOrEqual(previous);
      const dump = parseDump((await cli('state', 'dump', '--partition', 'p0')).stdout);
      expect(dump.lsn).toBe(summary.appliedLsn);
      expect(dump.entries).toEqual(bankModel(events, dump.lsn));
      // Snapshots in flight were finished, not abandoned: the store is complete.
      const { pointer, problems } = inspectFsSnapshots(join(cwd, 'store'), 'p0');
      expect(problems).toEqual([]);
      if (pointer) expect(pointer.lsn).toBeLessThanOrEqual(dump.lsn);
      expect(existsSync(join(cwd, 'state', '.staging')) ? readdirSync(join(cwd, 'state', '.staging')) : []).toEqual([]);
      previous = summary.appliedLsn;
    }
    // A stopped worker resumes from its local state and ends where an uninterrupted one would.
    const last = await cli('--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end');
    expect(last.code, last.stderr).toBe(0);
    expect(JSON.parse(last.stdout)).toMatchObject({ start: { source: 'local', lsn: previous }, appliedLsn: events.length - 1 });
    expect(parseDump((await cli('state', 'dump', '--partition', 'p0')).stdout).entries).toEqual(bankModel(events));
    rmSync(cwd, { recursive: true, force: true });
  });
});
