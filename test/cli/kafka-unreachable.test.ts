import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { KafkaLog } from '../../src/log/kafka.js';
import { REPO_ROOT, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { watch, writeConfig } from '../helpers/runtime-harness.js';

/**
 * An unreachable Kafka log (issue 11): a broker that accepts TCP connections and never
 * answers, and a port nobody listens on. Every operation fails LOG_UNAVAILABLE within a
 * bounded time (never INTERNAL, never a hang); a batch run (`--stop-at-end`, `--until-lsn`)
 * gives up after `log.unavailableTimeoutMs`; a long-running worker keeps waiting.
 */

const PROCESSOR = join(REPO_ROOT, 'examples/bank/processor.ts');
/** Nothing listens on port 1: connects are refused at once. */
const REFUSED = '127.0.0.1:1';

let silent: Server;
let silentBroker: string;
const sockets: Socket[] = [];

beforeAll(async () => {
  // Accepts every connection, reads what it is sent, never writes a byte.
  silent = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentBroker = `127.0.0.1:${(silent.address() as { port: number }).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

function kafkaConfig(brokers: string, extra: Record<string, unknown> = {}): string {
  const cwd = tempDir('cairn-kafka-unreachable-');
  writeConfig(cwd, { log: { type: 'kafka', brokers: [brokers], topic: 'cairn-unreachable', ...extra }, stateDir: './state', store: { url: 'file://./store' } });
  return cwd;
}

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work;
  return { value, ms: Date.now() - started };
}

function lastErrorLine(stderr: string): string | undefined {
  return stderr.split('\n').filter((l) => l.startsWith('cairn: error:')).at(-1);
}

describe('a broker that accepts connections and never answers', () => {
  it('fails info, read and append with retryable LOG_UNAVAILABLE within the operation bound, not INTERNAL', async () => {
    const log = new KafkaLog({ brokers: [silentBroker], topic: 'cairn-silent' });
    try {
      const outcomes = await Promise.all(
        [() => log.info('p0'), () => log.read('p0', 0, { maxRecords: 1, waitMs: 100 }), () => log.append('p0', [{ key: 'k', value: 1 }])].map((op) =>
          timed(op().then(
            () => undefined,
            (e: unknown) => e,
          )),
        ),
      );
      for (const { value, ms } of outcomes) {
        expect(value).toBeInstanceOf(CairnError);
        expect(value).toMatchObject({ code: 'LOG_UNAVAILABLE', retryable: true });
        // requestTimeoutMs 10 s answers first; operationTimeoutMs (15 s) bounds it anyway.
        expect(ms).toBeLessThan(20_000);
      }
    } finally {
      const { ms } = await timed(log.close());
      expect(ms).toBeLessThan(16_000);
    }
  });

  it('cairn log info exits 1 with LOG_UNAVAILABLE, in bounded time', async () => {
    const cwd = kafkaConfig(silentBroker);
    const { value: r, ms } = await timed(runCli(['--json', 'log', 'info', '--partition', 'p0'], { cwd }));
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'LOG_UNAVAILABLE' } });
    expect(lastErrorLine(r.stderr)).toMatch(/\[LOG_UNAVAILABLE\]$/);
    expect(ms).toBeLessThan(30_000);
  });

  it('cairn run --stop-at-end gives up after log.unavailableTimeoutMs', async () => {
    const cwd = kafkaConfig(silentBroker, { unavailableTimeoutMs: 3000 });
    const { value: r, ms } = await timed(runCli(['--json', 'run', '--partition', 'p0', '--processor', PROCESSOR, '--stop-at-end'], { cwd }));
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'LOG_UNAVAILABLE' } });
    // One hung call (10 s request timeout) already exceeds the 3 s allowance.
    expect(ms).toBeLessThan(30_000);
  });
});

describe('a port nobody listens on', () => {
  it('cairn run --stop-at-end and --until-lsn exit 1 LOG_UNAVAILABLE after log.unavailableTimeoutMs', async () => {
    const cwd = kafkaConfig(REFUSED, { unavailableTimeoutMs: 3000 });
    for (const mode of [['--stop-at-end'], ['--until-lsn', '100']]) {
      const { value: r, ms } = await timed(runCli(['run', '--partition', 'p0', '--processor', PROCESSOR, ...mode], { cwd }));
      expect(r.code, `${mode[0]}: ${r.stderr}`).toBe(1);
      expect(lastErrorLine(r.stderr), mode[0]).toMatch(/unreachable for \d+ ms.*log\.unavailableTimeoutMs \(3000 ms\).*\[LOG_UNAVAILABLE\]$/);
      // Each refused call costs kafkajs's retries (about 5 s); startup a few more.
      expect(ms, mode[0]).toBeLessThan(15_000);
    }
  });

  // A worker of fixed partitions, and a group worker started while its broker is away.
  it.each([[['--partition', 'p0']], [['--group', 'workers']]])('a long-running worker (%j) keeps waiting the outage out, and stops cleanly on SIGTERM', async (mode) => {
    const cwd = kafkaConfig(REFUSED, { unavailableTimeoutMs: 3000 });
    const w = watch(spawnCli(['run', ...mode, '--processor', PROCESSOR], { cwd }));
    try {
      await w.waitForLine(/log unavailable; waiting/, 30_000);
      const firstWait = Date.now();
      // Well past unavailableTimeoutMs (3 s: twice that since it first waited) and at least two
      // failed calls: still waiting. Polled for, not slept: each refused call takes kafkajs's
      // retries (about 5 s), longer on a loaded machine.
      const waits = () => w.stderr().split('\n').filter((l) => l.includes('log unavailable; waiting')).length;
      const deadline = firstWait + 60_000;
      while (w.isRunning() && (waits() < 2 || Date.now() - firstWait < 6_000) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(w.isRunning(), w.stderr()).toBe(true);
      expect(waits()).toBeGreaterThanOrEqual(2);
      expect(Date.now() - firstWait).toBeGreaterThanOrEqual(6_000);
      w.child.kill('SIGTERM');
      expect(await w.exited).toMatchObject({ code: 0 });
    } finally {
      if (w.isRunning()) w.child.kill('SIGKILL');
    }
  });
});
