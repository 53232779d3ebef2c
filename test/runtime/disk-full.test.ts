import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../src/log/embedded.js';
import { Cairn } from '../../src/runtime/cairn.js';
import type { Processor } from '../../src/runtime/processor-module.js';
import { tempDir } from '../helpers/cli.js';
import { embeddedConfig } from '../helpers/runtime-harness.js';
import { expectCode } from '../helpers/fixtures.js';

/**
 * A full local disk is DISK_FULL (retryable: freeing space fixes it), never INTERNAL, whether
 * LevelDB hits it while committing a batch or a restore hits it while downloading. The disk is
 * a real 3 MiB tmpfs (the suite runs as root, as CI does; without root the mount fails loudly).
 */

const P = 'p0';
let dir: string;
let small: string;

beforeAll(() => {
  dir = tempDir('cairn-disk-full-');
  small = join(dir, 'small');
  mkdirSync(small);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', small], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`cannot mount a tmpfs for the full-disk test (needs root): ${(err as Error).message}`);
  }
});
afterAll(() => {
  if (small) execFileSync('umount', ['-l', small], { stdio: 'ignore' });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** 10 KB of incompressible text per record under its own key: the state outgrows the disk within a few hundred records. */
const hoarder: Processor = {
  name: 'hoarder',
  async apply(record, state) {
    state.put(`k/${record.lsn}`, { pad: randomBytes(5_000).toString('hex') });
  },
};

describe('a full local disk', () => {
  it('LevelDB running out of space while committing is DISK_FULL', async () => {
    const { config } = embeddedConfig(dir, { stateDir: small, snapshots: { everyRecords: 1_000_000, retain: 3, concurrency: 4 }, runtime: { batchSize: 20 } });
    const log = new EmbeddedLog({ dir: join(dir, 'log') });
    const cairn = new Cairn(config, { log });
    try {
      await log.append(P, Array.from({ length: 600 }, (_, i) => ({ key: `r${i}`, value: i })));
      const processor = cairn.processor(P, hoarder);
      const err = await expectCode(() => processor.run({ stopAtEnd: true }), 'DISK_FULL');
      expect(err.retryable).toBe(true);
      await processor.close().catch(() => undefined);
    } finally {
      await cairn.close();
    }
  });

  it('a restore into a full disk is DISK_FULL and leaves no temporary folder', async () => {
    const { config } = embeddedConfig(dir, { store: { url: 'file://./store2' }, log: { type: 'embedded', dir: './log2' }, stateDir: './state2', snapshots: { everyRecords: 1_000_000, retain: 3, concurrency: 4 } });
    const log = new EmbeddedLog({ dir: join(dir, 'log2') });
    const cairn = new Cairn(config, { log });
    try {
      await log.append(P, Array.from({ length: 500 }, (_, i) => ({ key: `r${i}`, value: i })));
      const processor = cairn.processor(P, hoarder);
      await processor.run({ stopAtEnd: true, checkpointOnExit: true });
      await processor.close();
      rmSync(join(small, P), { recursive: true, force: true });
      const target = join(small, 'restored');
      await expectCode(() => cairn.snapshots.restore({ partition: P, targetDir: target }), 'DISK_FULL');
      expect(execFileSync('ls', ['-A', small]).toString().trim()).toBe('');
    } finally {
      await cairn.close();
    }
  });
});
