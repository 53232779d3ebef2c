import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { layout } from '../../src/snapshots/layout.js';
import { readLatest, readMetadata } from '../../src/snapshots/pointer.js';
import type { Capture } from '../../src/state/types.js';
import { withRetry } from '../../src/store/retry.js';
import type { ObjectStore } from '../../src/store/types.js';
import { FaultyStore, type Gate } from '../helpers/faulty-store.js';
import { dumpState, fsStore, repository, sortedEntries, stateRig, type StateRig } from '../helpers/snapshot-fixtures.js';

/**
 * A publish whose latest.json PUT landed but whose answer was lost: the retry finds the ETag
 * changed (by its own write) and re-reads. If another worker published on top meanwhile, its
 * pointer retains the first worker's snapshot, so the first worker must not delete that folder
 * as "superseded": the pointer would list a snapshot that no longer exists.
 */

const P = 'p0';
let rig: StateRig;
let base: ObjectStore;

beforeEach(async () => {
  rig = await stateRig('lost-response', { n: 20, pad: 64 });
  base = fsStore(rig.dir, { retry: false });
});
afterEach(async () => {
  await base?.close();
  await rig?.close();
});

async function captureAt(lsn: number): Promise<Capture> {
  await rig.commitAt(lsn);
  return rig.capture();
}

describe('a lost latest.json response while another worker publishes', () => {
  it('never deletes a folder the new pointer lists', async () => {
    const other = repository(base, 3);
    const seeded = await captureAt(100);
    await other.checkpoint(seeded, { partition: P, node: 'b', source: `embedded:${P}` });

    // Worker A: its first PUT of latest.json lands but A hears an error; its retry waits at a
    // gate until worker B has published on top of A's pointer.
    const faulty = new FaultyStore(base);
    let retryGate: Gate | undefined;
    faulty.inject({
      op: 'put',
      key: layout.latest(P),
      mode: 'fail-after',
      times: 1,
      when: () => {
        retryGate ??= faulty.gate('put', layout.latest(P));
        return true;
      },
    });
    const storeA = withRetry(faulty, { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 });
    const a = repository(storeA, 3).checkpoint(await captureAt(200), { partition: P, node: 'a', source: `embedded:${P}` });
    const captureB = await captureAt(300);
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (retryGate) {
          clearInterval(poll);
          void retryGate.arrived.then(resolve);
        }
      }, 1);
    });
    expect((await readLatest(base, P))!.pointer.lsn).toBe(200);
    const b = await other.checkpoint(captureB, { partition: P, node: 'b', source: `embedded:${P}` });
    expect(b.status).toBe('published');
    retryGate!.release();
    const resultA = await a;

    const pointer = (await readLatest(base, P))!.pointer;
    expect(pointer.lsn).toBe(300);
    expect(pointer.retained.map((e) => e.lsn)).toEqual([300, 200, 100]);
    // A's snapshot landed and is retained: A reports it published, and it is whole.
    expect(resultA.status).toBe('published');
    for (const e of pointer.retained) {
      const meta = await readMetadata(base, e.path);
      expect((await other.verify(P, meta.snapshotId)).ok).toBe(true);
    }
    const target = join(rig.dir, 'restored');
    await other.restore({ partition: P, snapshotId: pointer.retained[1]!.snapshotId, targetDir: target });
    const dump = await dumpState(target);
    expect(dump.lsn).toBe(200);
    expect(dump.entries).toEqual(sortedEntries(rig.modelAt(200)));
  });
});
