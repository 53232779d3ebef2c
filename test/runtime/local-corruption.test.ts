import { existsSync, readdirSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bankEvents } from '../../src/cli/demo-events.js';
import type { ErrorCode } from '../../src/core/errors.js';
import { EmbeddedLog } from '../../src/log/embedded.js';
import type { AppendRecord } from '../../src/log/types.js';
import { Cairn } from '../../src/runtime/cairn.js';
import { readLatest, readMetadata } from '../../src/snapshots/pointer.js';
import { isLocalCorruption } from '../../src/state/integrity.js';
import { PartitionState } from '../../src/state/partition-state.js';
import { checkTableFile, readTableLayout } from '../../src/state/table-check.js';
import bank from '../../examples/bank/processor.js';
import { bankModel } from '../helpers/bank-model.js';
import { flipByteInFile } from '../helpers/faulty-store.js';
import { tempDir } from '../helpers/cli.js';
import { embeddedConfig, readState, releasedAfterEach } from '../helpers/runtime-harness.js';
import { expectCode } from '../helpers/fixtures.js';

/**
 * Local state that LevelDB would silently repair, or whose tables no longer pass their block
 * checksums, is detected — at open, and at the latest when a checkpoint reads its tables —
 * never published, and replaced by the latest snapshot plus a replay of the log.
 */

const P = 'p0';
const { dirs, closers } = releasedAfterEach();

function world(everyRecords: number) {
  const dir = tempDir('cairn-local-corrupt-');
  dirs.push(dir);
  const { config } = embeddedConfig(dir, { snapshots: { everyRecords, retain: 3, concurrency: 4 } });
  const log = new EmbeddedLog({ dir: join(dir, 'log') });
  closers.push(() => log.close());
  const stateDir = join(config.stateDir, P);
  /** One processor run to `untilLsn` (or the end), closed afterwards. */
  const run = async (options: { untilLsn?: number; checkpointOnExit?: boolean }) => {
    const cairn = new Cairn(config, { log });
    const processor = cairn.processor(P, bank);
    try {
      return await processor.run({ ...options, ...(options.untilLsn === undefined ? { stopAtEnd: true } : {}) });
    } finally {
      await processor.close();
      await cairn.store.close();
    }
  };
  return { dir, config, log, stateDir, run };
}

const flipByte = (path: string, at: number) => flipByteInFile(path, { at, mask: 0x10 });

function files(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir).filter((n) => pattern.test(n)).map((n) => join(dir, n));
}

/**
 * Changes one digit of a `"balance":N` stored as literal bytes in some data block, so the
 * value still parses and only the block crc can tell. Returns the table it changed.
 */
async function changeOneDigit(tables: string[]): Promise<string> {
  for (const table of tables) {
    const bytes = readFileSync(table);
    for (const block of readTableLayout(bytes, table).filter((b) => b.kind === 'data')) {
      const text = bytes.subarray(block.offset, block.offset + block.size).toString('latin1');
      const m = /"balance":-?(\d+)/.exec(text);
      if (!m) continue;
      const at = block.offset + m.index + m[0].length - 1;
      const digit = bytes[at]! - 0x30;
      const fh = await open(table, 'r+');
      try {
        await fh.write(Buffer.from([0x30 + ((digit + 5) % 10)]), 0, 1, at);
      } finally {
        await fh.close();
      }
      return table;
    }
  }
  throw new Error('no literal balance found in any data block');
}

/** Opening `dir` fails with `code`; returns the error. */
const openError = (dir: string, code: ErrorCode) => expectCode(async () => (await PartitionState.open(dir, { create: false })).close(), code);

describe('damaged local state is detected and rebuilt, never published', () => {
  it('a bit flip in the write-ahead log: refused at open, bootstrapped from the snapshot, the log replayed', async () => {
    const w = world(100_000);
    const events: AppendRecord[] = bankEvents(3000, 11);
    await w.log.append(P, events.slice(0, 1000));
    await w.run({ untilLsn: 999, checkpointOnExit: true });
    await w.log.append(P, events.slice(1000));
    await w.run({ untilLsn: 2999 });

    // The batches since the snapshot live only in the write-ahead log: spoil its first block.
    const [wal] = files(w.stateDir, /^\d+\.log$/).sort((a, b) => statSync(b).size - statSync(a).size);
    expect(statSync(wal!).size).toBeGreaterThan(3 * 32 * 1024);
    await flipByte(wal!, 1000);
    const err = await openError(w.stateDir, 'CORRUPT');
    expect(isLocalCorruption(err)).toBe(true);

    const summary = await w.run({ checkpointOnExit: true });
    expect(summary.start.source).toBe('bootstrap');
    expect(summary.start.lsn).toBe(999);
    const state = await readState(w.stateDir);
    expect(state.lsn).toBe(2999);
    expect(state.entries).toEqual(bankModel(events, 2999));
  });

  it('a changed byte inside a table: the checkpoint refuses it, the state is rebuilt and what is published is right', async () => {
    const w = world(400);
    const events: AppendRecord[] = bankEvents(3000, 12);
    await w.log.append(P, events.slice(0, 1000));
    await w.run({ untilLsn: 999, checkpointOnExit: true });
    const store = new Cairn(w.config, { log: w.log }).store;
    closers.push(() => store.close());
    const good = (await readLatest(store, P))!.pointer;
    expect(good.lsn).toBe(999);

    // One digit of a balance inside a table the last snapshot holds: LevelDB does not check
    // block crcs on reads, so the account silently reads back with another balance.
    const victim = await changeOneDigit(files(w.stateDir, /^\d+\.ldb$/));
    await expect(checkTableFile(victim)).rejects.toMatchObject({ code: 'CORRUPT' });

    await w.log.append(P, events.slice(1000));
    const summary = await w.run({ checkpointOnExit: true });
    expect(summary.appliedLsn).toBe(2999);
    const state = await readState(w.stateDir);
    expect(state.entries).toEqual(bankModel(events, 2999));

    // Every retained snapshot is sound: its tables pass their block checks, and a restore
    // of each equals the model at its LSN.
    const latest = (await readLatest(store, P))!.pointer;
    expect(latest.lsn).toBe(2999);
    const cairn = new Cairn(w.config, { log: w.log });
    for (const e of latest.retained) {
      const meta = await readMetadata(store, e.path);
      for (const f of meta.files.filter((x) => x.name.endsWith('.ldb'))) await checkTableFile(join(w.dir, 'store', f.key));
      const target = join(w.dir, 'restored', e.snapshotId);
      await cairn.snapshots.restore({ partition: P, snapshotId: e.snapshotId, targetDir: target });
      const restored = await readState(target);
      expect(restored.lsn).toBe(e.lsn);
      expect(restored.entries).toEqual(bankModel(events, e.lsn));
    }
    await cairn.store.close();
  });

  it('a half-truncated table is CORRUPT at open (not STATE_UNAVAILABLE) and the next start bootstraps', async () => {
    const w = world(100_000);
    const events: AppendRecord[] = bankEvents(1000, 13);
    await w.log.append(P, events);
    await w.run({ untilLsn: 999, checkpointOnExit: true });
    const [table] = files(w.stateDir, /^\d+\.ldb$/);
    truncateSync(table!, Math.floor(statSync(table!).size / 2));
    await openError(w.stateDir, 'CORRUPT');
    const summary = await w.run({});
    expect(summary.start.source).toBe('bootstrap');
    const state = await readState(w.stateDir);
    expect(state.lsn).toBe(999);
    expect(state.entries).toEqual(bankModel(events, 999));
  });

  it('damaged state with no snapshot and an untrimmed log is rebuilt by replaying the whole log', async () => {
    const w = world(100_000);
    const events: AppendRecord[] = bankEvents(2000, 14);
    await w.log.append(P, events);
    await w.run({ untilLsn: 1999 });
    const [wal] = files(w.stateDir, /^\d+\.log$/).sort((a, b) => statSync(b).size - statSync(a).size);
    await flipByte(wal!, 500);
    const summary = await w.run({});
    expect(summary.start.source).toBe('empty');
    expect(existsSync(w.stateDir)).toBe(true);
    const state = await readState(w.stateDir);
    expect(state.lsn).toBe(1999);
    expect(state.entries).toEqual(bankModel(events, 1999));
  });
});
