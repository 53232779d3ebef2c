import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { MiB, buildState, emit, ensureMinio, keyOf, round, tempDir } from './lib.js';

/**
 * What retained snapshots cost in the store: five checkpoints of one state, about 1% of it
 * rewritten between each (a contiguous key range, as time-ordered keys would be), `retain: 5`,
 * with `snapshots.sharing` "shared" and "copy" on the same writes. The figure is the bytes
 * stored under the partition over the bytes of the last snapshot's state.
 */
export async function sharingFigure(stateMib: number): Promise<void> {
  const { endpoint, bucket } = ensureMinio();
  const dir = tempDir('sharing');
  const built = await buildState(join(dir, 'state'), stateMib * MiB);
  const state = built.state;
  // A state that has been running a while: the compactions its build set off are done, so
  // what changes between checkpoints is the churn and the compactions it causes.
  await state.compactAll();
  const stores: Record<'copy' | 'shared', Cairn> = {
    copy: cairnFor('copy'),
    shared: cairnFor('shared'),
  };
  function cairnFor(sharing: 'copy' | 'shared'): Cairn {
    const prefix = `bench-sharing-${sharing}-${randomBytes(4).toString('hex')}`;
    return new Cairn(
      normaliseConfig({ store: { url: `s3://${bucket}/${prefix}`, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true }, stateDir: './unused', snapshots: { everyRecords: 1, retain: 5, concurrency: 32, evictionGraceMs: 0, sharing } }, dir, 'bench'),
      { logger: silentLogger },
    );
  }
  const changed = Math.ceil(built.keys / 100);
  let lsn = state.appliedLsn;
  let stateBytes = 0;
  for (let round = 0; round < 5; round++) {
    if (round > 0) {
      const from = round * changed;
      for (let start = from; start < from + changed; start += 1000) {
        const writes = new Map<string, unknown>();
        for (let i = start; i < Math.min(from + changed, start + 1000); i++) writes.set(keyOf(i % built.keys), randomBytes(768).toString('base64'));
        await state.commit(writes, ++lsn);
      }
    }
    const capture = await state.capture(join(dir, `cp-${round}`));
    stateBytes = capture.files.reduce((n, f) => n + f.size, 0);
    for (const cairn of Object.values(stores)) await cairn.snapshots.checkpoint(capture, { partition: 'p0', node: 'bench', source: 'bench:p0' });
    await capture.release();
  }
  const stored = async (cairn: Cairn) => {
    let n = 0;
    for await (const o of cairn.store.list('p0/')) n += o.size;
    return n;
  };
  const shared = (await stored(stores.shared)) / stateBytes;
  const copy = (await stored(stores.copy)) / stateBytes;
  emit({ figure: 'stored_bytes_after_5_checkpoints_shared', ratio: round(shared), target: '<= 1.15', met: shared <= 1.15, copyRatio: round(copy), stateMiB: round(stateBytes / MiB), churn: '1% per checkpoint', retain: 5 });
  await state.close();
  for (const cairn of Object.values(stores)) await cairn.close();
  rmSync(dir, { recursive: true, force: true });
}
