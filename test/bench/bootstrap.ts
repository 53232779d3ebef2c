import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import { emit, ensureMinio, round, tempDir, timed } from './lib.js';

/**
 * What a snapshot saves a fresh worker: bootstrapping from a snapshot taken at 90% of the log
 * and replaying the last 10%, against replaying the whole log with no snapshot. Same Kafka
 * topic, same processor, snapshots in MinIO. Both workers start from nothing on local disk and
 * stop at the log's last record; both pay the same fixed costs (connecting, the reader's first
 * fetch), which is why the ratio stays below 10 however fast the restore.
 */
export async function bootstrapFigure(brokers: string[], topic: string, records: number, processor: Processor): Promise<void> {
  const { endpoint, bucket } = ensureMinio();
  const dir = tempDir('bootstrap');
  const cairnWith = (prefix: string, stateDir: string) =>
    new Cairn(
      normaliseConfig(
        { store: { url: `s3://${bucket}/${prefix}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true }, log: { type: 'kafka', brokers, topic }, stateDir, snapshots: { everyRecords: 0, retain: 2, concurrency: 32 } },
        dir,
        'bench',
      ),
      { logger: silentLogger },
    );
  const last = records - 1;
  const snapshotAt = Math.floor(records * 0.9) - 1;
  const withSnapshot = `bench-boot-${randomBytes(4).toString('hex')}`;
  const seed = cairnWith(withSnapshot, './seed');
  const seeding = seed.processor('p0', processor, { batchSize: 1000, everyRecords: 0 });
  await seeding.run({ untilLsn: snapshotAt });
  await seeding.checkpoint();
  await seeding.close();
  await seed.close();

  const runFresh = async (prefix: string, stateDir: string) => {
    const cairn = cairnWith(prefix, stateDir);
    const p = cairn.processor('p0', processor, { batchSize: 1000, everyRecords: 0 });
    const run = await timed(() => p.run({ untilLsn: last }));
    await p.close();
    await cairn.close();
    if (run.value.appliedLsn !== last) throw new Error(`stopped at ${run.value.appliedLsn}, not ${last}`);
    return { ms: run.ms, source: run.value.start.source, replayed: run.value.recordsApplied };
  };
  const boot = await runFresh(withSnapshot, './fresh-boot');
  const replay = await runFresh(`bench-boot-none-${randomBytes(4).toString('hex')}`, './fresh-replay');
  if (boot.source !== 'bootstrap' || replay.source === 'bootstrap') throw new Error(`unexpected start sources ${boot.source}, ${replay.source}`);
  const ratio = replay.ms / boot.ms;
  emit({
    figure: 'bootstrap_tail_vs_full_replay',
    ratio: round(ratio),
    target: '>= 10',
    met: ratio >= 10,
    records,
    snapshotLsn: snapshotAt,
    bootstrapPlusTailMs: Math.round(boot.ms),
    tailRecords: boot.replayed,
    fullReplayMs: Math.round(replay.ms),
    note: 'both from an empty state folder to the last record; the tail is 10% of the log, so 10 is the ceiling',
  });
  rmSync(dir, { recursive: true, force: true });
}
