import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { createStore } from '../../src/store/index.js';
import { CountingStore } from '../helpers/counting-store.js';
import { MiB, buildState, emit, ensureMinio, median, round, tempDir, timed } from './lib.js';

/**
 * Fork create at two state sizes on MinIO: time as a ratio of the large state's to the small
 * one's (both measured here, alternating), plus the requests and bytes of each, which must
 * be identical.
 */
export async function forkFigures(largeMiB: number, smallMiB: number, rounds = 15): Promise<void> {
  const { endpoint, bucket } = ensureMinio();
  const dir = tempDir('fork');
  const config = normaliseConfig(
    { store: { url: `s3://${bucket}/bench-fork-${Date.now()}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true }, stateDir: './state', snapshots: { everyRecords: 1, retain: 3, concurrency: 32 } },
    dir,
    'bench',
  );
  const store = new CountingStore(createStore(config.store));
  const cairn = new Cairn(config, { store, logger: silentLogger });
  for (const [partition, mib] of [['small', smallMiB], ['large', largeMiB]] as const) {
    const built = await buildState(join(dir, partition), mib * MiB);
    // The same LSN at both sizes: an LSN's digits are the one thing a fork's documents carry
    // that could differ in length.
    await built.state.commit(new Map([['bench-marker', 1]]), 1_000_000);
    const capture = await built.state.capture(join(dir, `cp-${partition}`));
    await cairn.snapshots.checkpoint(capture, { partition, node: 'bench', source: `bench:${partition}` });
    await capture.release();
    await built.state.close();
    rmSync(join(dir, partition), { recursive: true, force: true });
  }
  const times: Record<'small' | 'large', number[]> = { small: [], large: [] };
  const costs: Record<'small' | 'large', { requests: number; bytesWritten: number; sharedBytes: number }[]> = { small: [], large: [] };
  for (let i = 0; i < rounds; i++) {
    for (const partition of ['small', 'large'] as const) {
      store.reset();
      const r = await timed(() => cairn.forks.create(partition, `${partition}-f${i}`));
      times[partition].push(r.ms);
      costs[partition].push({ requests: store.total, bytesWritten: r.value.bytesWritten, sharedBytes: r.value.sharedBytes });
    }
  }
  const ratio = median(times.large) / median(times.small);
  const same = (k: 'requests' | 'bytesWritten') => costs.small.every((c, i) => c[k] === costs.large[i]![k]);
  emit({
    figure: `fork_create_${largeMiB}MiB_vs_${smallMiB}MiB`,
    ratio: round(ratio),
    target: '<= 1.3',
    met: ratio <= 1.3,
    largeMs: round(median(times.large)),
    smallMs: round(median(times.small)),
    requests: costs.large[0]!.requests,
    bytesWritten: costs.large[0]!.bytesWritten,
    requestsIdentical: same('requests'),
    bytesIdentical: same('bytesWritten'),
    largeSharedBytes: costs.large[0]!.sharedBytes,
    smallSharedBytes: costs.small[0]!.sharedBytes,
  });
  await cairn.close();
  rmSync(dir, { recursive: true, force: true });
}
