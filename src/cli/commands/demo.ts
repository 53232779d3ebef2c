import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { normaliseConfig } from '../../core/config.js';
import { CLI_DEFAULTS } from '../../core/defaults.js';
import { badInput } from '../../core/errors.js';
import { parsePositiveInt } from '../../core/names.js';
import { Cairn } from '../../runtime/cairn.js';
import { loadProcessor } from '../../runtime/processor-module.js';
import { resumeLsn } from '../../snapshots/coverage.js';
import { PartitionState } from '../../state/partition-state.js';
import { bankEvents } from '../demo-events.js';
import { action, mib, type CliContext } from '../context.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

async function dumpState(dir: string): Promise<{ lsn: number; entries: string }> {
  const state = await PartitionState.open(dir, { create: false });
  try {
    const lines: string[] = [];
    for await (const e of state.entries()) lines.push(JSON.stringify(e));
    return { lsn: state.appliedLsn, entries: lines.join('\n') };
  } finally {
    await state.close();
  }
}

/** Written first into every demo folder: what lets a later demo wipe it. */
const DEMO_MARKER = 'cairn-demo.json';
/** What demos wrote before the marker existed, and nothing else (so `npm start` still reruns in an old `.cairn/demo`). */
const LEGACY_DEMO = new Set(['log', 'store', 'node-a', 'node-b']);

async function isEarlierDemo(dir: string, entries: string[]): Promise<boolean> {
  const marker = await readFile(join(dir, DEMO_MARKER), 'utf8').then((t) => JSON.parse(t) as { demo?: unknown }, () => undefined);
  if (marker?.demo === true) return true;
  const exists = (path: string) => stat(join(dir, path)).then(() => true, () => false);
  return entries.every((e) => LEGACY_DEMO.has(e)) && (await exists('log/p0/CURRENT')) && (await exists('store/p0/latest.json'));
}

/**
 * Empties `dir` for a new demo: a missing or empty folder, or one an earlier demo made.
 * Anything else may be someone's work: refused, nothing touched.
 */
async function prepareDemoDir(dir: string): Promise<void> {
  const st = await stat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) throw badInput(`--dir ${dir} is a file, not a folder`);
  const entries = st ? await readdir(dir) : [];
  if (entries.length > 0) {
    if (!(await isEarlierDemo(dir, entries))) throw badInput(`--dir ${dir} is not empty and is not an earlier demo's folder (no ${DEMO_MARKER}); nothing was changed (choose a new or empty folder)`);
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, DEMO_MARKER), `${JSON.stringify({ demo: true, createdAt: new Date().toISOString() })}\n`);
}

/**
 * The whole story on the embedded default, in a fresh folder: append, run with snapshots,
 * trim behind the snapshots, append more, bootstrap a fresh node across the trim gap; then
 * fork an older snapshot, replay the log under other fee rules and diff the outcome.
 */
async function demo(ctx: CliContext, opts: { dir: string; records: string }): Promise<void> {
  const dir = resolve(opts.dir);
  const total = parsePositiveInt(opts.records, '--records');
  await prepareDemoDir(dir);
  const config = normaliseConfig(
    { store: { url: 'file://./store' }, log: { type: 'embedded', dir: './log' }, stateDir: './node-a', node: 'node-a', snapshots: { everyRecords: Math.max(1, Math.floor(total / 4)), retain: 3, concurrency: 8 } },
    dir,
    'demo',
  );
  const cairn = new Cairn(config, { logger: ctx.logger });
  const say = (line: string) => !ctx.json && !ctx.globals.quiet && process.stdout.write(`${line}\n`);
  try {
    const bank = await loadProcessor(join(PACKAGE_ROOT, 'examples/bank/processor.ts'));
    const events = bankEvents(total + Math.floor(total / 4), 42);
    const first = await cairn.log.append('p0', events.slice(0, total));
    say(`1. appended ${total} bank events to the embedded log (LSN ${first.first}..${first.last})`);

    const nodeA = cairn.processor('p0', bank);
    const runA = await nodeA.run({ stopAtEnd: true, checkpointOnExit: true });
    await nodeA.close();
    const published = runA.snapshots.filter((s) => s.status === 'published');
    const last = published[published.length - 1]!.metadata;
    say(`2. node-a applied ${runA.recordsApplied} records and published ${published.length} snapshots; the last (LSN ${last.lsn}) uploaded ${mib(last.stats.uploadedBytes)} and copied ${mib(last.stats.copiedBytes)} server-side; sync pause ${last.stats.syncPauseMs.toFixed(1)} ms`);

    const pointer = (await cairn.snapshots.latest('p0'))!.pointer;
    const archived = Math.min(...pointer.retained.map((r) => r.lsn));
    const trimmed = await cairn.log.trim('p0', resumeLsn(archived));
    say(`3. trimmed the log behind the snapshots: archived LSN ${archived}, log now starts at ${trimmed.start}`);

    const more = await cairn.log.append('p0', events.slice(total));
    // No snapshot this time, so the fresh node below must bootstrap and then tail the log.
    const nodeA2 = cairn.processor('p0', bank, { everyRecords: 0 });
    const runA2 = await nodeA2.run({ stopAtEnd: true });
    await nodeA2.close();
    say(`4. appended ${events.length - total} more; node-a resumed from its ${runA2.start.source} state and reached LSN ${runA2.appliedLsn}`);

    const nodeBDir = join(dir, 'node-b');
    const started = performance.now();
    const nodeB = cairn.processor('p0', bank, { stateDir: nodeBDir, node: 'node-b' });
    const runB = await nodeB.run({ stopAtEnd: true });
    await nodeB.close();
    const bootMs = performance.now() - started;
    say(`5. fresh node-b: ${runB.start.reason ?? runB.start.source}; bootstrapped from latest.json at LSN ${runB.start.lsn} and tailed to LSN ${runB.appliedLsn} in ${bootMs.toFixed(0)} ms`);

    const a = await dumpState(join(dir, 'node-a', 'p0'));
    const b = await dumpState(join(nodeBDir, 'p0'));
    const equal = a.lsn === b.lsn && a.entries === b.entries;
    say(`6. node-a and node-b states ${equal ? 'are identical' : 'DIFFER'} at LSN ${a.lsn} (${a.entries.split('\n').length} accounts)`);

    // What if premium accounts had paid no fee since the oldest retained snapshot?
    const head = await cairn.checkpointStateDir('p0', join(dir, 'node-a', 'p0'));
    const oldest = (await cairn.snapshots.latest('p0'))!.pointer.retained.reduce((x, y) => (y.lsn < x.lsn ? y : x));
    const fork = await cairn.forks.create(`p0@${oldest.snapshotId}`, 'what-if');
    say(`7. forked p0 at LSN ${fork.lsn} as "what-if": ${fork.requests} requests, ${fork.bytesWritten} bytes written, ${mib(fork.sharedBytes)} of tables shared, none copied`);
    const feesV2 = await loadProcessor(join(PACKAGE_ROOT, 'examples/bank/fees-v2.ts'));
    const replay = await cairn.forks.replay('what-if', feesV2, { toLsn: head.metadata.lsn, checkpointOnExit: true });
    say(`8. replayed LSN ${fork.lsn + 1}..${replay.appliedLsn} of p0's log into the fork under ${feesV2.name}`);
    const diff = await cairn.forks.diff('p0', 'what-if', { samples: 3 });
    const at = diff.lsns.same ? `at LSN ${diff.a.lsn}` : `at LSNs ${diff.a.lsn} and ${diff.b.lsn} (different points in the log)`;
    say(`9. diff p0 vs what-if ${at}: ${diff.changed} accounts changed, ${diff.added} added, ${diff.removed} removed, ${diff.unchanged} unchanged; e.g. ${diff.samples.map((x) => x.key).join(', ')}`);
    const report = {
      dir,
      records: events.length,
      logEnd: more.last + 1,
      snapshots: published.map((s) => ({ snapshotId: s.metadata.snapshotId, lsn: s.metadata.lsn, stats: s.metadata.stats })),
      trim: { archivedLsn: archived, logStart: trimmed.start },
      nodeB: { source: runB.start.source, reason: runB.start.reason ?? null, bootstrapLsn: runB.start.lsn, appliedLsn: runB.appliedLsn, ms: Math.round(bootMs) },
      statesEqual: equal,
      fork: { name: fork.fork, lsn: fork.lsn, requests: fork.requests, bytesWritten: fork.bytesWritten, replayedTo: replay.appliedLsn },
      diff: { changed: diff.changed, added: diff.added, removed: diff.removed, unchanged: diff.unchanged },
    };
    ctx.output(report, () => `demo finished in ${dir}`);
    if (!equal) throw new Error('demo states differ');
  } finally {
    await cairn.close();
  }
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('the whole story on the embedded default: append, run, checkpoint, trim, bootstrap a fresh node, fork, replay, diff')
    .option('--dir <dir>', "working folder: new, empty, or an earlier demo's (then wiped first)", CLI_DEFAULTS.demoDir)
    .option('--records <n>', 'bank events to append first (a positive integer)', String(CLI_DEFAULTS.demoRecords))
    .action(action(demo));
}
