import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { normaliseConfig, type RawConfig } from '../../src/core/config.js';
import { CairnError } from '../../src/core/errors.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import type { AppendRecord, Log, LogInfo, LogRecord, ReadOptions } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import { tempDir } from '../helpers/cli.js';
import { readState } from '../helpers/runtime-harness.js';

/**
 * What the runtime does with records a log cannot decode and with a log that is briefly
 * unreachable, independent of the backend: a decorator over a real embedded log marks
 * chosen LSNs undecodable (their bytes are not JSON, which the default codec reads) and fails
 * chosen calls with LOG_UNAVAILABLE (as the Kafka log does while a broker restarts). The
 * same behaviour on a real broker is tested in the Kafka end-to-end suite.
 */
class TroubledLog implements Log {
  readonly capabilities;
  /** Calls to fail with LOG_UNAVAILABLE before answering again. */
  outageCalls = 0;
  failedCalls = 0;

  constructor(
    private readonly inner: Log,
    private readonly undecodable: ReadonlySet<number>,
  ) {
    this.capabilities = inner.capabilities;
  }

  append(partition: string, records: AppendRecord[]) {
    return this.inner.append(partition, records);
  }

  async read(partition: string, fromLsn: number, options: ReadOptions): Promise<LogRecord[]> {
    this.maybeFail();
    const records = await this.inner.read(partition, fromLsn, options);
    return records.map((r) => (this.undecodable.has(r.lsn) ? { ...r, value: Buffer.from('<html>not json') } : r));
  }

  async info(partition: string): Promise<LogInfo> {
    this.maybeFail();
    return this.inner.info(partition);
  }

  trim(partition: string, beforeLsn: number) {
    return this.inner.trim(partition, beforeLsn);
  }

  partitions() {
    return this.inner.partitions();
  }

  source(partition: string) {
    return this.inner.source(partition);
  }

  close() {
    return this.inner.close();
  }

  private maybeFail(): void {
    if (this.outageCalls <= 0) return;
    this.outageCalls--;
    this.failedCalls++;
    throw new CairnError('LOG_UNAVAILABLE', 'broker 127.0.0.1:9092 refused the connection', { retryable: true });
  }
}

const counting: Processor = {
  name: 'counting',
  async apply(record, state) {
    const n = ((await state.get('count')) as number | undefined) ?? 0;
    state.put('count', n + 1);
    state.put(`seen/${String(record.lsn).padStart(4, '0')}`, (record.value as { n: number }).n);
  },
};

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(undecodable: number[], runtime: Partial<NonNullable<RawConfig['runtime']>> = {}) {
  const dir = tempDir('cairn-bad-records-');
  dirs.push(dir);
  const config = normaliseConfig(
    { store: { url: 'file://./store' }, stateDir: './state', node: 'n', runtime: { batchSize: 10, onBadRecord: 'stop', ...runtime } },
    dir,
    'test',
  );
  const log = new TroubledLog(new EmbeddedLog({ dir: join(dir, 'log') }), new Set(undecodable));
  await log.append('p0', Array.from({ length: 50 }, (_, n) => ({ key: `k${n}`, value: { n } })));
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (l: string) => lines.push(l) });
  const cairn = new Cairn(config, { log, logger });
  closers.push(() => cairn.close());
  return { cairn, log, lines, stateDir: join(config.stateDir, 'p0') };
}

describe('records the log cannot decode', () => {
  it("with onBadRecord 'stop' fail CORRUPT naming the LSN; nothing of that batch commits", async () => {
    const { cairn, stateDir } = await setup([23]);
    const p = cairn.processor('p0', counting);
    const err = await p.run({ stopAtEnd: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await p.close();
    expect(err).toMatchObject({ code: 'CORRUPT', details: { partition: 'p0', lsn: 23 } });
    expect((err as Error).message).toMatch(/LSN 23/);
    const state = await readState(stateDir);
    expect(state.lsn).toBe(19);
    expect(state.entries.get('count')).toBe(20);
  });

  it("with onBadRecord 'skip' are skipped, counted by reason and logged; the rest applies", async () => {
    const { cairn, lines, stateDir } = await setup([3, 23, 49], { onBadRecord: 'skip' });
    const p = cairn.processor('p0', counting);
    const summary = await p.run({ stopAtEnd: true });
    await p.close();
    expect(summary).toMatchObject({ appliedLsn: 49, recordsApplied: 47, recordsSkipped: 3 });
    const metric = await cairn.metrics.recordsSkipped.get();
    expect(metric.values).toEqual([expect.objectContaining({ labels: { partition: 'p0', reason: 'decode' }, value: 3 })]);
    const warned = lines.map((l) => JSON.parse(l) as { msg: string; lsn: number }).filter((l) => l.msg === 'record could not be decoded; skipped');
    expect(warned.map((l) => l.lsn)).toEqual([3, 23, 49]);
    const state = await readState(stateDir);
    expect(state.lsn).toBe(49);
    expect(state.entries.get('count')).toBe(47);
    expect(state.entries.has('seen/0023')).toBe(false);
  });
});

describe('a log that is briefly unavailable', () => {
  it('is waited out: the processor resumes where it stopped, nothing lost or applied twice', async () => {
    const { cairn, log, lines, stateDir } = await setup([]);
    log.outageCalls = 4;
    const p = cairn.processor('p0', counting);
    const summary = await p.run({ stopAtEnd: true });
    await p.close();
    expect(log.failedCalls).toBe(4);
    expect(lines.filter((l) => l.includes('log unavailable; waiting'))).toHaveLength(4);
    expect(summary).toMatchObject({ appliedLsn: 49, recordsApplied: 50 });
    const state = await readState(stateDir);
    expect(state.entries.get('count')).toBe(50);
    expect([...state.entries.keys()].filter((k) => k.startsWith('seen/'))).toHaveLength(50);
  });

  it('a batch run (stop-at-end, until-lsn) gives up after unavailableTimeoutMs with LOG_UNAVAILABLE; a long-running one waits on', async () => {
    for (const run of [{ stopAtEnd: true }, { untilLsn: 40 }] as const) {
      for (const when of ['before open', 'while running'] as const) {
        const { cairn, log, lines } = await setup([]);
        const p = cairn.processor('p0', counting, { unavailableTimeoutMs: 1500 });
        if (when === 'while running') await p.run({ untilLsn: 9 });
        log.outageCalls = 1_000_000;
        const started = Date.now();
        const err = await p.run(run).then(
          () => undefined,
          (e: unknown) => e,
        );
        const took = Date.now() - started;
        await p.close();
        const label = `${JSON.stringify(run)} ${when}`;
        expect(err, label).toBeInstanceOf(CairnError);
        expect(err, label).toMatchObject({ code: 'LOG_UNAVAILABLE', details: { partition: 'p0', unavailableTimeoutMs: 1500 } });
        expect((err as CairnError).details!.downForMs, label).toBeGreaterThanOrEqual(1500);
        expect(took, label).toBeGreaterThanOrEqual(1400);
        expect(took, label).toBeLessThan(5000);
        expect(lines.filter((l) => l.includes('log unavailable; waiting')).length, label).toBeGreaterThan(0);
      }
    }

    // No stop-at-end, no until-lsn: a worker waits however long the log is away.
    const { cairn, log } = await setup([]);
    const p = cairn.processor('p0', counting, { unavailableTimeoutMs: 300 });
    log.outageCalls = 1_000_000;
    const controller = new AbortController();
    const running = p.run({ signal: controller.signal });
    // Five times its unavailableTimeoutMs, then the log comes back.
    await new Promise((r) => setTimeout(r, 1500));
    const failed = log.failedCalls;
    expect(failed).toBeGreaterThan(1);
    log.outageCalls = 0;
    const deadline = Date.now() + 15_000;
    while (p.appliedLsn < 49 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    expect(await running).toMatchObject({ appliedLsn: 49, recordsApplied: 50, stoppedBy: 'signal' });
    await p.close();
    expect(log.failedCalls).toBe(failed);
  });

  it('stops promptly on a signal while waiting, before and after the state opened', async () => {
    for (const when of ['before open', 'while running'] as const) {
      const { cairn, log } = await setup([]);
      const p = cairn.processor('p0', counting);
      if (when === 'while running') await p.run({ untilLsn: 9 });
      log.outageCalls = 1_000_000;
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => controller.abort(), 300);
      const outcome = await p.run({ signal: controller.signal }).then(
        (summary) => summary.stoppedBy,
        (err: unknown) => (err as CairnError).code,
      );
      await p.close();
      expect(outcome, when).toBe(when === 'before open' ? 'ABORTED' : 'signal');
      expect(Date.now() - started).toBeLessThan(10_000);
    }
  });
});
