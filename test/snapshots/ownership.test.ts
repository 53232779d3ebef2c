import { describe, expect, it } from 'vitest';
import { awaitHandoff, claimOwnership, readOwner } from '../../src/snapshots/ownership.js';
import { createStore } from '../../src/store/index.js';
import { normaliseConfig } from '../../src/core/config.js';
import { tempDir } from '../helpers/cli.js';
import { releasedAfterEach } from '../helpers/runtime-harness.js';

/** owner.json: claims only grow, a superseded claim is FENCED, a handoff waits only for a live owner. */
const { dirs, closers } = releasedAfterEach();

function store() {
  const dir = tempDir('cairn-ownership-');
  dirs.push(dir);
  const s = createStore(normaliseConfig({ store: { url: 'file://./store' } }, dir, 'test').store);
  closers.push(() => s.close());
  return s;
}

describe('partition ownership', () => {
  it('each claim takes the next epoch; the one it superseded is FENCED, the current one passes', async () => {
    const s = store();
    const first = await claimOwnership(s, 'p0', { node: 'w1', group: 'g' });
    await expect(first.check()).resolves.toBeUndefined();
    const second = await claimOwnership(s, 'p0', { node: 'w2', group: 'g' });
    expect([first.epoch, second.epoch]).toEqual([1, 2]);
    await expect(first.check()).rejects.toMatchObject({ code: 'FENCED', details: { partition: 'p0', epoch: 1, owner: { node: 'w2', epoch: 2 } } });
    await expect(second.check()).resolves.toBeUndefined();
    // A late release of the superseded claim changes nothing.
    await first.release();
    expect((await readOwner(s, 'p0'))!.record).toMatchObject({ epoch: 2, node: 'w2' });
    expect((await readOwner(s, 'p0'))!.record.releasedAt).toBeUndefined();
  });

  it('claims racing each other all get distinct epochs, and only the highest passes its check', async () => {
    const s = store();
    const claims = await Promise.all(Array.from({ length: 6 }, (_, i) => claimOwnership(s, 'p1', { node: `w${i}`, group: 'g' })));
    const epochs = claims.map((c) => c.epoch).sort((a, b) => a - b);
    expect(epochs).toEqual([1, 2, 3, 4, 5, 6]);
    const checks = await Promise.allSettled(claims.map((c) => c.check()));
    expect(checks.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(claims[checks.findIndex((r) => r.status === 'fulfilled')]!.epoch).toBe(6);
  });

  it('a handoff waits for a live owner to release, not at all for a gone one, and gives up at its bound', async () => {
    const s = store();
    expect(await awaitHandoff(s, 'p2', 'w2', async () => true, 1000)).toBe('free');
    const held = await claimOwnership(s, 'p2', { node: 'w1', group: 'g' });
    expect(await awaitHandoff(s, 'p2', 'w2', async () => false, 5000)).toBe('owner gone');
    const started = Date.now();
    expect(await awaitHandoff(s, 'p2', 'w2', async () => true, 600)).toBe('timed out');
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    setTimeout(() => void held.release(), 300);
    expect(await awaitHandoff(s, 'p2', 'w2', async () => true, 10_000)).toBe('released');
    expect(await awaitHandoff(s, 'p2', 'w1', async () => true, 10_000)).toBe('free');
  });
});
