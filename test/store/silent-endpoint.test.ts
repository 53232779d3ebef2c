import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionState } from '../../src/state/partition-state.js';
import { runCli, tempDir, type CliResult } from '../helpers/cli.js';

/**
 * An S3 endpoint that accepts TCP connections and never answers (a hung proxy, a wedged
 * load balancer, a frozen server). With the DEFAULT store settings — connect 10 s, 30 s for
 * an answer, 4 attempts — every store request must give up, so each command ends with one
 * error line, STORE_UNAVAILABLE, well within 150 s: at most 4 × 30 s plus a few seconds of
 * backoff and start-up. Before the bounds, a silent server held each attempt for 120 s (the
 * SDK's socket timeout) and the SDK's 3 attempts ran inside the wrapper's 4: close to half
 * an hour per request.
 */
const BOUND_MS = 150_000;

let sockets: Socket[] = [];
let connections = 0;
const server = createServer((socket) => {
  connections++;
  sockets.push(socket);
  // Never write; never end. Errors (the client giving up and resetting) are expected.
  socket.on('error', () => undefined);
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A local state with one applied record, so `checkpoint` has something to upload. */
async function localState(dir: string): Promise<void> {
  const state = await PartitionState.open(dir, { partition: 'p0' });
  await state.commit(new Map([['k', { v: 1 }]]), 0);
  await state.close();
}

async function timed(run: Promise<CliResult>): Promise<CliResult & { ms: number }> {
  const started = performance.now();
  const r = await run;
  return { ...r, ms: performance.now() - started };
}

describe('a store endpoint that accepts connections and never answers', () => {
  it('snapshots list, restore and checkpoint each fail with STORE_UNAVAILABLE within the bound', { timeout: 200_000 }, async () => {
    const { port } = server.address() as AddressInfo;
    const cwd = tempDir('cairn-silent-');
    // No timeout or attempt settings: the defaults are what is under test.
    writeFileSync(
      join(cwd, 'cairn.config.json'),
      JSON.stringify({ store: { url: 's3://cairn-silent/x', endpoint: `http://127.0.0.1:${port}` }, log: { type: 'embedded', dir: './log' }, stateDir: './state' }),
    );
    await localState(join(cwd, 'state', 'p0'));
    const env = { AWS_ACCESS_KEY_ID: 'silent', AWS_SECRET_ACCESS_KEY: 'silent-secret', AWS_REGION: 'us-east-1', AWS_PROFILE: '' };
    const cli = (...args: string[]) => timed(runCli(args, { cwd, env }));

    const results = await Promise.all([
      cli('snapshots', 'list', '--partition', 'p0'),
      cli('restore', '--partition', 'p0', '--to', join(cwd, 'restored')),
      cli('checkpoint', '--partition', 'p0'),
    ]);

    const names = ['snapshots list', 'restore', 'checkpoint'];
    console.info(results.map((r, i) => `${names[i]}: exit ${r.code} in ${(r.ms / 1000).toFixed(1)} s`).join('; ') + `; ${connections} connections`);
    for (const [i, r] of results.entries()) {
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      expect(r.code, `${names[i]}: ${r.stderr}`).toBe(1);
      expect(lines, names[i]).toHaveLength(1);
      expect(lines[0]).toContain('STORE_UNAVAILABLE');
      expect(r.ms, names[i]).toBeLessThan(BOUND_MS);
    }
    // Every command really waited on the server: it tried more than once.
    expect(connections).toBeGreaterThanOrEqual(2 * results.length);
  });
});
