import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bank from '../../examples/bank/processor.js';
import { bankEvents } from '../../src/cli/demo-events.js';
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { createCoordinatorMetrics } from '../../src/coordinator/metrics.js';
import { buildCoordinatorServer } from '../../src/coordinator/server.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { tempDir } from '../helpers/cli.js';

/**
 * The status page as an operator sees it: rendered by a real headless Chromium (Debian's
 * `chromium`, driven by playwright-core), with a timeline drawn for every partition whose
 * markers sit in LSN order.
 */
const CHROMIUM = process.env.CAIRN_CHROMIUM ?? '/usr/bin/chromium';

let browser: Browser | undefined;
let close: (() => Promise<void>) | undefined;
let url = '';
let shots = '';

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install chromium), as .ci/run does`);
  const dir = tempDir('cairn-status-page-');
  shots = dir;
  const config = normaliseConfig({ snapshots: { everyRecords: 300, retain: 2, concurrency: 4 } }, dir, 'test');
  const cairn = new Cairn(config);
  for (const [partition, n] of [['p0', 1200], ['p1', 700]] as const) {
    await cairn.log.append(partition, bankEvents(n, n));
    const processor = cairn.processor(partition, bank);
    await processor.run({ stopAtEnd: true, checkpointOnExit: true });
    await processor.close();
  }
  await cairn.close();

  const metrics = createCoordinatorMetrics();
  const coordinator = new Coordinator({
    createLog: () => new EmbeddedLog({ dir: config.log.type === 'embedded' ? config.log.dir : '' }),
    repository: new Cairn(config).snapshots,
    policy: 'replicas',
    trimIntervalMs: 0,
    trimDelayMs: 0,
    replicaTtlMs: 60_000,
    logger: silentLogger,
    metrics,
  });
  coordinator.report('p0', { node: 'worker-a', appliedLsn: 1199, snapshotLsn: 1199 });
  coordinator.report('p0', { node: 'worker-b', appliedLsn: 640, snapshotLsn: 600 });
  coordinator.report('p1', { node: 'worker-a', appliedLsn: 699, snapshotLsn: 699 });
  // Trim p1 so its timeline shows a trimmed stretch as well.
  expect(await coordinator.trim('p1', { dryRun: false })).toMatchObject({ trimmed: true });
  const app = await buildCoordinatorServer({ coordinator, metrics, logger: silentLogger });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  close = async () => {
    await app.close();
    await coordinator.close();
  };
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run'],
  });
});

afterAll(async () => {
  await browser?.close();
  await close?.();
});

describe('coordinator status page in headless Chromium', () => {
  it('draws a timeline per partition with its markers in LSN order', async () => {
    const page = await browser!.newPage({ viewport: { width: 1100, height: 900 } });
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    expect(await page.title()).toBe('Cairn coordinator');
    for (const partition of ['p0', 'p1']) {
      const svg = page.locator(`svg.timeline[data-partition="${partition}"]`);
      await expect(svg.count()).resolves.toBe(1);
      const box = await svg.boundingBox();
      expect(box!.width).toBeGreaterThan(500);
      expect(box!.height).toBeGreaterThan(60);
      // Each marker as the browser laid it out: its kind, LSN and on-screen x.
      const markers = await svg.locator('g.marker').evaluateAll((gs) =>
        gs.map((g) => {
          const line = g.querySelector('line')!.getBoundingClientRect();
          return { kind: g.getAttribute('data-kind'), lsn: Number(g.getAttribute('data-lsn')), x: line.left + line.width / 2, height: line.height };
        }),
      );
      const kinds = markers.map((m) => m.kind);
      expect(kinds).toEqual(expect.arrayContaining(['log-start', 'archived', 'replica', 'log-end']));
      for (const m of markers) expect(m.height).toBeGreaterThan(10);
      const sorted = [...markers].sort((a, b) => a.lsn - b.lsn);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.x).toBeGreaterThanOrEqual(sorted[i - 1]!.x - 0.5);
      const retained = await svg.locator('rect.retained').boundingBox();
      expect(retained!.width).toBeGreaterThan(0);
    }
    // p1 was trimmed behind its archived snapshot: a trimmed stretch is drawn before the log.
    const trimmed = await page.locator('svg.timeline[data-partition="p1"] rect.trimmed').boundingBox();
    expect(trimmed!.width).toBeGreaterThan(10);
    expect(await page.locator('svg.timeline[data-partition="p0"] g.marker-replica').count()).toBe(2);
    const shot = join(shots, 'status.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    await page.close();
  });
});
