import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { CommitPipeline } from '../../src/runtime/commit-pipeline.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { DELETE, type StateWrite } from '../../src/state/types.js';
import { it } from '../helpers/fixtures.js';

function openState(dir: string): Promise<PartitionState> {
  return PartitionState.open(join(dir, 'p0'), { partition: 'p0' });
}

const w = (entries: Array<[string, StateWrite]>) => new Map(entries);

describe('CommitPipeline', () => {
  it('reads see the batch being committed before the state has it, as copies', async ({ tmp }) => {
    const state = await openState(tmp);
    await state.commit(w([['a', { n: 1 }], ['gone', 1]]), 0);
    const pipeline = new CommitPipeline();
    const committed: number[] = [];
    await pipeline.submit(state, w([['a', { n: 2 }], ['gone', DELETE], ['b', 'new']]), 1, () => committed.push(1));
    expect(pipeline.lsn).toBe(1);
    const a = (await pipeline.read(state, 'a')) as { n: number };
    expect(a).toEqual({ n: 2 });
    a.n = 99; // a processor changing what it read must not change the batch being committed
    expect(await pipeline.read(state, 'a')).toEqual({ n: 2 });
    expect(await pipeline.read(state, 'gone')).toBeUndefined();
    expect(await pipeline.read(state, 'b')).toBe('new');
    await pipeline.settle();
    expect(pipeline.lsn).toBeUndefined();
    expect(committed).toEqual([1]);
    expect(state.appliedLsn).toBe(1);
    expect(await state.get('a')).toEqual({ n: 2 });
    expect(await state.get('gone')).toBeUndefined();
    await state.close();
  });

  it('commits in LSN order, one at a time: the next submit waits for the one in flight', async ({ tmp }) => {
    const state = await openState(tmp);
    const pipeline = new CommitPipeline();
    const order: number[] = [];
    for (let lsn = 0; lsn < 20; lsn++) await pipeline.submit(state, w([['k', lsn]]), lsn, () => order.push(lsn));
    await pipeline.settle();
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(await state.get('k')).toBe(19);
    await state.close();
  });

  it('a failed commit surfaces at the next submit, which commits nothing, and only once', async ({ tmp }) => {
    const state = await openState(tmp);
    const pipeline = new CommitPipeline();
    await state.commit(w([['k', 1]]), 5);
    // LSN going backwards is refused by the state: the commit fails in flight.
    await pipeline.submit(state, w([['k', 2]]), 3, () => undefined);
    await expect(pipeline.submit(state, w([['k', 3]]), 6, () => undefined)).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(pipeline.lsn).toBeUndefined();
    await pipeline.settle(); // nothing left in flight; the failure is not reported twice
    expect(state.appliedLsn).toBe(5);
    expect(await state.get('k')).toBe(1);
    await state.close();
  });

  it('settle rethrows a failed commit', async ({ tmp }) => {
    const state = await openState(tmp);
    const pipeline = new CommitPipeline();
    await state.commit(w([['k', 1]]), 5);
    await pipeline.submit(state, w([['k', 2]]), 3, () => undefined);
    await expect(pipeline.settle()).rejects.toMatchObject({ code: 'INTERNAL' });
    await state.close();
  });
});
