import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { normaliseConfig, type RawConfig } from '../../src/core/config.js';
import { COORDINATOR_DEFAULTS, FLEET_DEFAULTS, LOG_DEFAULTS, SNAPSHOT_DEFAULTS, STORE_DEFAULTS } from '../../src/core/defaults.js';
import { duration, durationFlag, formatDuration, parseDuration } from '../../src/core/durations.js';
import { isCairnError } from '../../src/core/errors.js';
import { Cairn } from '../../src/runtime/cairn.js';

/** Durations in the config file and on the command line: milliseconds, or "30s" and friends. */

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (isCairnError(err)) return err.code;
    throw err;
  }
  return undefined;
}

function refusedPath(raw: unknown): unknown {
  try {
    normaliseConfig(raw, '/tmp/base', 'test.json');
  } catch (err) {
    if (isCairnError(err, 'INVALID_CONFIG')) return err.details?.path;
    throw err;
  }
  throw new Error('accepted');
}

describe('duration parsing', () => {
  it.each([
    [60_000, 60_000],
    [0, 0],
    ['250ms', 250],
    ['60s', 60_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['1.5h', 5_400_000],
    ['90 seconds', 90_000],
    ['500', 500],
    [' 30s ', 30_000],
  ])('reads %j as %d ms', (value, expected) => {
    expect(parseDuration(value)).toBe(expected);
    expect(duration().parse(value)).toBe(expected);
  });

  it.each(['', 'soon', '5 fortnights', '1e3', '-1s', '0.5ms', 'NaN', 'x'.repeat(200)])('refuses %j', (value) => {
    expect(parseDuration(value)).toBeUndefined();
    expect(duration().safeParse(value).success).toBe(false);
  });

  it('enforces bounds on numbers and strings alike', () => {
    const schema = duration({ min: 6_000, max: 300_000 });
    expect(schema.parse('6s')).toBe(6_000);
    expect(schema.parse(300_000)).toBe(300_000);
    for (const bad of ['5s', 5_999, '5m1ms', 300_001, '1h', 1.5, true, null]) expect(schema.safeParse(bad).success, String(bad)).toBe(false);
  });

  it('formats a default the way it parses it back', () => {
    expect(formatDuration(60_000)).toBe('1m');
    expect(formatDuration(1_500)).toBe('1500ms');
    for (const ms of [0, 250, 1_500, 60_000, 300_000, 86_400_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });

  it('CLI flags take the same strings and numbers; a bad one is BAD_INPUT', () => {
    expect(durationFlag('30s', '--trim-interval')).toBe(30_000);
    expect(durationFlag('600000', '--trim-delay')).toBe(600_000);
    expect(durationFlag('0', '--trim-interval')).toBe(0);
    expect(codeOf(() => durationFlag('soon', '--trim-interval'))).toBe('BAD_INPUT');
    expect(codeOf(() => durationFlag('-5s', '--trim-interval'))).toBe('BAD_INPUT');
    expect(codeOf(() => durationFlag('2h', '--replica-ttl', { max: 3_600_000 }))).toBe('BAD_INPUT');
  });
});

describe('duration fields of the config', () => {
  const withNumbers = {
    node: 'n1',
    store: { url: 'file://./store', connectTimeoutMs: 5_000, requestTimeoutMs: 60_000 },
    log: { type: 'embedded', dir: './log', unavailableTimeoutMs: 120_000 },
    snapshots: { evictionGraceMs: 600_000 },
    fleet: { sessionTimeoutMs: 45_000, commitIntervalMs: 250, handoffTimeoutMs: 0 },
    coordinator: { url: 'http://127.0.0.1:7070', reportIntervalMs: 10_000, trimIntervalMs: 1_800_000, trimDelayMs: 3_600_000, replicaTtlMs: 90_000 },
  } satisfies RawConfig;
  const withStrings = {
    node: 'n1',
    store: { url: 'file://./store', connectTimeoutMs: '5s', requestTimeoutMs: '1m' },
    log: { type: 'embedded', dir: './log', unavailableTimeoutMs: '2m' },
    snapshots: { evictionGraceMs: '10m' },
    fleet: { sessionTimeoutMs: '45s', commitIntervalMs: '250ms', handoffTimeoutMs: '0s' },
    coordinator: { url: 'http://127.0.0.1:7070', reportIntervalMs: '10s', trimIntervalMs: '30m', trimDelayMs: '1h', replicaTtlMs: '90s' },
  } satisfies RawConfig;

  it('a config written with strings normalises to the same object as one written with numbers', () => {
    const a = normaliseConfig(withNumbers, '/tmp/base', 'test.json');
    const b = normaliseConfig(withStrings, '/tmp/base', 'test.json');
    expect(b).toEqual(a);
    expect(b.fleet.sessionTimeoutMs).toBe(45_000);
    expect(b.coordinator?.trimDelayMs).toBe(3_600_000);
    expect(b.store.requestTimeoutMs).toBe(60_000);
  });

  it('absent durations get the defaults, in milliseconds', () => {
    const c = normaliseConfig({ coordinator: { url: 'http://127.0.0.1:7070' } }, '/tmp/base', 'test.json');
    expect(c.log.unavailableTimeoutMs).toBe(LOG_DEFAULTS.unavailableTimeoutMs);
    expect(c.snapshots).toEqual(SNAPSHOT_DEFAULTS);
    expect(c.fleet).toEqual(FLEET_DEFAULTS);
    expect(c.store).toMatchObject(STORE_DEFAULTS);
    expect(c.coordinator).toMatchObject({
      reportIntervalMs: COORDINATOR_DEFAULTS.reportIntervalMs,
      trimIntervalMs: COORDINATOR_DEFAULTS.trimIntervalMs,
      trimDelayMs: COORDINATOR_DEFAULTS.trimDelayMs,
      replicaTtlMs: COORDINATOR_DEFAULTS.replicaTtlMs,
    });
  });

  it.each([
    [{ fleet: { sessionTimeoutMs: 'soon' } }, 'fleet.sessionTimeoutMs'],
    [{ fleet: { sessionTimeoutMs: '5s' } }, 'fleet.sessionTimeoutMs'],
    [{ fleet: { sessionTimeoutMs: 5_000 } }, 'fleet.sessionTimeoutMs'],
    [{ snapshots: { evictionGraceMs: '8d' } }, 'snapshots.evictionGraceMs'],
    [{ snapshots: { evictionGraceMs: '-1s' } }, 'snapshots.evictionGraceMs'],
    [{ snapshots: { evictionGraceMs: false } }, 'snapshots.evictionGraceMs'],
    [{ log: { type: 'embedded', dir: './log', unavailableTimeoutMs: '2 fortnights' } }, 'log.unavailableTimeoutMs'],
    [{ store: { url: 'file://./s', requestTimeoutMs: '50ms' } }, 'store.requestTimeoutMs'],
    [{ stores: { eu: { url: 'file://./eu', connectTimeoutMs: '1h' } } }, 'stores.eu.connectTimeoutMs'],
    [{ coordinator: { url: 'http://127.0.0.1:7070', replicaTtlMs: '0.5s' } }, 'coordinator.replicaTtlMs'],
  ])('%j is INVALID_CONFIG naming %s', (raw, path) => {
    expect(codeOf(() => normaliseConfig(raw, '/tmp/base', 'test.json'))).toBe('INVALID_CONFIG');
    expect(refusedPath(raw)).toBe(path);
  });
});

describe('new Cairn from raw options', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('compiles a raw config once, resolving relative paths against baseDir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-raw-'));
    dirs.push(dir);
    const cairn = new Cairn({ store: { url: 'file://./store' }, log: { type: 'embedded', dir: './log' }, stateDir: './state', node: 'n1', snapshots: { evictionGraceMs: '10m' } }, { baseDir: dir });
    try {
      expect(cairn.config).toEqual(normaliseConfig({ store: { url: 'file://./store' }, log: { type: 'embedded', dir: './log' }, stateDir: './state', node: 'n1', snapshots: { evictionGraceMs: 600_000 } }, dir, 'options'));
      expect(cairn.config.store.root).toBe(join(dir, 'store'));
      expect(cairn.config.stateDir).toBe(join(dir, 'state'));
      // It works: the fs store and the embedded log it describes.
      await cairn.log.append('p0', [{ key: 'k', value: { n: 1 } }]);
      expect((await cairn.log.info('p0')).end).toBe(1);
      await cairn.store.put('probe', 'x');
      expect((await cairn.store.get('probe')).body.toString()).toBe('x');
    } finally {
      await cairn.close();
    }
  });

  it('takes an already compiled config as it is', () => {
    const config = normaliseConfig({ node: 'n1' }, '/tmp/base', 'test.json');
    expect(new Cairn(config).config).toBe(config);
  });

  it('a bad raw option is INVALID_CONFIG from the constructor', () => {
    expect(codeOf(() => new Cairn({ fleet: { sessionTimeoutMs: 'soon' } }))).toBe('INVALID_CONFIG');
    expect(codeOf(() => new Cairn({ snapshots: { retain: 0 } }))).toBe('INVALID_CONFIG');
  });
});
