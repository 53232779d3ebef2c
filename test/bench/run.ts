/**
 * `npm run bench`: one JSON line per figure, each a ratio of Cairn against a baseline measured
 * in this run on the same data. Sizes: BENCH_STATE_MIB (default 1024), BENCH_SMALL_MIB (10),
 * BENCH_RECORDS (300000), BENCH_KAFKA_RECORDS (1000000), BENCH_FLEET_STATE_MIB (256),
 * BENCH_SHARING_STATE_MIB (256). Needs MinIO and Kafka (started here)
 * and s5cmd (built here).
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import type { Capture } from '../../src/state/types.js';
import { MemoryLog } from './memory-log.js';
import { sharingFigure } from './sharing.js';
import { restoreFigure, uploadFigure } from './transfer.js';
import { fleetFigures } from './fleet.js';
import { forkFigures } from './fork.js';
import { kafkaThroughput } from './kafka.js';
import { MiB, buildState, emit, ensureMinio, ensureS5cmd, folderBytes, keyOf, median, round, tempDir, timed } from './lib.js';

const STATE_MIB = Number(process.env.BENCH_STATE_MIB ?? 1024);
const SMALL_MIB = Number(process.env.BENCH_SMALL_MIB ?? 10);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 300_000);
const KAFKA_RECORDS = Number(process.env.BENCH_KAFKA_RECORDS ?? 1_000_000);
const FLEET_STATE_MIB = Number(process.env.BENCH_FLEET_STATE_MIB ?? 256);
const SHARING_STATE_MIB = Number(process.env.BENCH_SHARING_STATE_MIB ?? 256);

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.stderr.write(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}\n`);

async function applyThroughput(): Promise<void> {
  const records = Array.from({ length: RECORDS }, (_, i) => ({ key: `acct-${i % 50_000}`, value: { n: i, memo: 'x'.repeat(64) } }));
  const rawDir = tempDir('raw');
  const raw = new ClassicLevel<string, string>(rawDir);
  await raw.open();
  const rawRun = await timed(async () => {
    for (let i = 0; i < records.length; i += 1000) {
      await raw.batch(records.slice(i, i + 1000).map((r) => ({ type: 'put' as const, key: `d:${r.key}`, value: JSON.stringify(r.value) })));
    }
  });
  await raw.close();

  const dir = tempDir('apply');
  const log = new MemoryLog();
  await log.append('p0', records);
  const config = normaliseConfig({ store: { url: 'file://./store' }, stateDir: './state', snapshots: { everyRecords: 1_000_000_000, retain: 2, concurrency: 8 } }, dir, 'bench');
  const cairn = new Cairn(config, { log, logger: silentLogger });
  const put: Processor = { name: 'put', apply: (r, s) => s.put(r.key ?? '', r.value) };
  const processor = cairn.processor('p0', put, { batchSize: 1000, everyRecords: 0 });
  const run = await timed(() => processor.run({ stopAtEnd: true }));
  await processor.close();
  await cairn.close();
  const rawRate = RECORDS / (rawRun.ms / 1000);
  const cairnRate = RECORDS / (run.ms / 1000);
  const ratio = cairnRate / rawRate;
  emit({ figure: 'apply_vs_raw_classic_level', ratio: round(ratio), target: '>= 0.8', met: ratio >= 0.8, records: RECORDS, cairnRecordsPerSec: Math.round(cairnRate), rawRecordsPerSec: Math.round(rawRate) });
  rmSync(rawDir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Sync pauses of one state: the first capture after open (it links every table once), then
 * steady-state captures, each after the same 1 MiB of fresh writes so every flush has equal
 * work. Captures reuse the previous capture's table links, so steady state is what a
 * running worker sees.
 */
async function syncPauses(state: Awaited<ReturnType<typeof buildState>>['state'], stagingRoot: string, firstKey: number): Promise<{ first: number; steady: number[] }> {
  const pauses: number[] = [];
  let lsn = state.appliedLsn;
  for (let round = 0; round < 10; round++) {
    const writes = new Map<string, unknown>();
    for (let i = 0; i < 1000; i++) writes.set(keyOf(firstKey + round * 1000 + i), 'v'.repeat(1000));
    await state.commit(writes, ++lsn);
    const capture = await state.capture(join(stagingRoot, `pause-${round}`));
    pauses.push(capture.syncPauseMs);
    await capture.release();
  }
  return { first: pauses[0]!, steady: pauses.slice(1) };
}

async function stateFigures(): Promise<void> {
  const { endpoint, bucket } = ensureMinio();
  const s5cmd = ensureS5cmd();
  const prefix = `bench-${Date.now()}`;
  const dir = tempDir('state');
  const config = normaliseConfig(
    { store: { url: `s3://${bucket}/${prefix}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true }, stateDir: './state', snapshots: { everyRecords: 1, retain: 3, concurrency: 32 } },
    dir,
    'bench',
  );
  const cairn = new Cairn(config, { logger: silentLogger });

  const small = await buildState(join(dir, 'small'), SMALL_MIB * MiB);
  const large = await timed(() => buildState(join(dir, 'large'), STATE_MIB * MiB));
  process.stderr.write(`built ${STATE_MIB} MiB state in ${(large.ms / 1000).toFixed(1)} s (${(folderBytes(join(dir, 'large')) / MiB).toFixed(0)} MiB on disk)\n`);
  const smallPauses = await syncPauses(small.state, join(dir, 'staging-small'), small.keys + 10);
  const largePauses = await syncPauses(large.value.state, join(dir, 'staging-large'), large.value.keys + 10);
  const smallPause = median(smallPauses.steady);
  const largePause = median(largePauses.steady);
  const pauseRatio = largePause / smallPause;
  emit({
    figure: 'sync_pause_1GiB_vs_10MiB',
    ratio: round(pauseRatio),
    target: '<= 2',
    met: pauseRatio <= 2,
    largeMiB: STATE_MIB,
    smallMiB: SMALL_MIB,
    largeMs: round(largePause),
    smallMs: round(smallPause),
    largeMaxMs: round(Math.max(...largePauses.steady)),
    smallMaxMs: round(Math.max(...smallPauses.steady)),
    // The first capture after open links every table once (~500 per GiB).
    largeFirstCaptureMs: round(largePauses.first),
    smallFirstCaptureMs: round(smallPauses.first),
  });
  await small.state.close();

  const state = large.value.state;
  const checkpointNow = async (label: string): Promise<{ capture: Capture; result: Awaited<ReturnType<typeof cairn.snapshots.checkpoint>> }> => {
    const capture = await state.capture(join(dir, `cp-${label}`));
    const names = capture.files.map((f) => ({ ...f }));
    const result = await cairn.snapshots.checkpoint(capture, { partition: 'p0', node: 'bench', source: 'bench:p0' });
    return { capture: { ...capture, files: names }, result };
  };
  const first = await timed(() => checkpointNow('1'));
  // Change ~1% of the state: a contiguous key range, as time-ordered keys would be.
  const changed = Math.ceil(large.value.keys / 100);
  let lsn = state.appliedLsn;
  for (let start = 0; start < changed; start += 1000) {
    const writes = new Map<string, unknown>();
    for (let i = start; i < Math.min(changed, start + 1000); i++) writes.set(keyOf(i), randomBytes(768).toString('base64'));
    await state.commit(writes, ++lsn);
  }
  const second = await timed(() => checkpointNow('2'));
  // The yardstick: bytes of tables the first snapshot did not have, plus the files
  // every snapshot must carry anew (MANIFEST prefix, CURRENT) and metadata.json.
  const before = new Set(first.value.capture.files.map((f) => `${f.name}:${f.size}`));
  const isTable = (name: string) => /\.(ldb|sst)$/.test(name);
  const fresh = second.value.capture.files.filter((f) => isTable(f.name) && !before.has(`${f.name}:${f.size}`));
  const newTableBytes = fresh.reduce((n, f) => n + f.size, 0);
  const carried = second.value.capture.files.filter((f) => !isTable(f.name)).reduce((n, f) => n + f.size, 0);
  const meta = second.value.result.metadata;
  const metadataBytes = Buffer.byteLength(JSON.stringify(meta, null, 2));
  const newBytes = newTableBytes + carried + metadataBytes;
  const total = meta.files.reduce((n, f) => n + f.size, 0);
  const sent = meta.stats.uploadedBytes + metadataBytes;
  const ratioB = sent / newBytes;
  emit({
    figure: 'second_checkpoint_uploaded_vs_new_files',
    ratio: round(ratioB),
    target: '<= 1.1',
    met: ratioB <= 1.1,
    uploadedBytes: sent,
    newTableBytes,
    manifestCurrentMetadataBytes: carried + metadataBytes,
    newTables: fresh.length,
    copiedBytes: meta.stats.copiedBytes,
    totalBytes: total,
    uploadedShareOfState: round(meta.stats.uploadedBytes / total),
    firstCheckpointMs: Math.round(first.ms),
    secondCheckpointMs: Math.round(second.ms),
  });
  const setup = { cairn, s5cmd, endpoint, bucket, prefix, dir };
  const capture = await state.capture(join(dir, 'cp-upload'));
  await uploadFigure(setup, capture);
  await capture.release();
  await state.close();
  await restoreFigure(setup, meta.partition, `${meta.partition}/${meta.snapshotId}_${meta.lsn}`);
  await cairn.close();
  rmSync(dir, { recursive: true, force: true });
}

const only = process.argv.slice(2);
if (only.length === 0 || only.includes('apply')) await applyThroughput();
if (only.length === 0 || only.includes('state')) await stateFigures();
if (only.length === 0 || only.includes('sharing')) await sharingFigure(SHARING_STATE_MIB);
if (only.length === 0 || only.includes('fork')) await forkFigures(STATE_MIB, SMALL_MIB);
if (only.length === 0 || only.includes('kafka')) await kafkaThroughput(KAFKA_RECORDS);
if (only.length === 0 || only.includes('fleet')) await fleetFigures(FLEET_STATE_MIB);
