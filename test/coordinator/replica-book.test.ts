import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REQUEST_TTL_MS, ReplicaBook } from '../../src/coordinator/replicas.js';
import type { CommandOutcome, Report } from '../../src/runtime/coordinator-protocol.js';

/**
 * What the coordinator remembers of processors' reports (soft state): replicas in
 * least-recently-seen order with a bound, liveness, snapshot requests and their answers,
 * delegated trims, and the commands each report's reply carries. Time is a number passed in.
 */

const TTL = 30_000;
const P = 'p0';

function report(node: string, fields: Partial<Omit<Report, 'node'>> = {}): Report {
  return { node, appliedLsn: 0, snapshotLsn: -1, ...fields };
}

const snapshotCommands = (commands: Array<{ type: string }>) => commands.filter((c) => c.type === 'snapshot');
const outcome = (id: string, status: CommandOutcome['status'], extra: Partial<CommandOutcome> = {}): CommandOutcome => ({ id, status, ...extra });

describe('ReplicaBook replicas', () => {
  it('records each report, newest values winning, listed least recently seen first', () => {
    const book = new ReplicaBook(TTL);
    book.report(P, report('a', { appliedLsn: 5, snapshotLsn: 3 }), 100);
    book.report(P, report('b', { appliedLsn: 7, log: { start: 0, end: 8 } }), 200);
    book.report(P, report('a', { appliedLsn: 9, snapshotLsn: 3 }), 300);
    expect(book.replicas(P)).toEqual([
      { node: 'b', appliedLsn: 7, snapshotLsn: -1, seenAt: 200, log: { start: 0, end: 8 } },
      { node: 'a', appliedLsn: 9, snapshotLsn: 3, seenAt: 300 },
    ]);
    // Partitions are separate books.
    book.report('p1', report('c'), 400);
    expect(book.replicas(P).map((r) => r.node)).toEqual(['b', 'a']);
    expect(book.partitions().sort()).toEqual(['p0', 'p1']);
  });

  it('a later report without log bounds forgets the earlier ones', () => {
    const book = new ReplicaBook(TTL);
    book.report(P, report('a', { log: { start: 0, end: 4 } }), 1);
    book.report(P, report('a'), 2);
    expect(book.replicas(P)[0]).not.toHaveProperty('log');
  });

  it('is live while now - seenAt <= ttl', () => {
    const book = new ReplicaBook(TTL);
    book.report(P, report('a'), 1_000);
    const [a] = book.replicas(P);
    expect(book.isLive(a!, 1_000 + TTL)).toBe(true);
    expect(book.isLive(a!, 1_000 + TTL + 1)).toBe(false);
  });

  it('reads of an unknown partition answer empty and create no book', () => {
    const book = new ReplicaBook(TTL);
    expect(book.replicas('nope')).toEqual([]);
    expect(book.requests('nope', 0)).toEqual([]);
    expect(book.pendingTrim('nope')).toBeUndefined();
    expect(book.reportedLog('nope', 0)).toBeUndefined();
    expect(book.partitions()).toEqual([]);
  });

  it('keeps at most 64 replicas a partition, evicting the longest silent, and says which', () => {
    const book = new ReplicaBook(TTL);
    for (let i = 0; i < 64; i++) expect(book.report(P, report(`n${i}`), i).evicted).toEqual([]);
    book.report(P, report('n0'), 100); // n0 is heard again: n1 is now the longest silent
    expect(book.report(P, report('new'), 101).evicted).toEqual(['n1']);
    const nodes = book.replicas(P).map((r) => r.node);
    expect(nodes).toHaveLength(64);
    expect(nodes.slice(0, 2)).toEqual(['n2', 'n3']);
    expect(nodes.slice(-2)).toEqual(['n0', 'new']);
  });

  it('property: the replica list is the model LRU of the last 64 distinct nodes, evictions reported exactly', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 90 }), { maxLength: 300 }), (seq) => {
        const book = new ReplicaBook(TTL);
        let model: string[] = [];
        seq.forEach((n, t) => {
          const node = `n${n}`;
          model = [...model.filter((m) => m !== node), node];
          const dropped = model.length > 64 ? model.splice(0, model.length - 64) : [];
          expect(book.report(P, report(node, { appliedLsn: t }), t).evicted).toEqual(dropped);
        });
        expect(book.replicas(P).map((r) => r.node)).toEqual(model);
      }),
      { numRuns: 100 },
    );
  });

  it('reportedLog is the bounds of the most recently seen live replica that reported some', () => {
    const book = new ReplicaBook(TTL);
    book.report(P, report('old', { log: { start: 0, end: 1 } }), 0);
    book.report(P, report('fresh', { log: { start: 5, end: 9 } }), 20_000);
    book.report(P, report('no-log'), 25_000); // most recent, but reports no bounds
    expect(book.reportedLog(P, 25_000)).toEqual({ start: 5, end: 9 });
    expect(book.reportedLog(P, 20_000 + TTL)).toEqual({ start: 5, end: 9 });
    expect(book.reportedLog(P, 20_000 + TTL + 1)).toBeUndefined(); // every replica with bounds went silent
  });
});

describe('ReplicaBook snapshot requests', () => {
  it('a request goes to every replica that has not answered it, once each', () => {
    const book = new ReplicaBook(TTL);
    const req = book.requestSnapshot(P, 50, 0);
    expect(req).toMatchObject({ minLsn: 50, requestedAt: 0, status: 'pending', answers: [] });
    expect(req.id).toMatch(/^[0-9A-Z]{26}$/);
    expect(book.report(P, report('a', { appliedLsn: 60 }), 1).commands).toEqual([{ id: req.id, type: 'snapshot', minLsn: 50 }]);
    // Until it answers, each report asks again (the reply may have been lost).
    expect(snapshotCommands(book.report(P, report('a', { appliedLsn: 60 }), 2).commands)).toHaveLength(1);
    // Answered "failed": not asked again.
    expect(book.report(P, report('a', { appliedLsn: 60, outcomes: [outcome(req.id, 'failed', { reason: 'disk' })] }), 3).commands).toEqual([]);
    // Another replica still is.
    expect(snapshotCommands(book.report(P, report('b'), 4).commands)).toEqual([{ id: req.id, type: 'snapshot', minLsn: 50 }]);
  });

  it('a replica that declined for being behind is asked again once it reports appliedLsn >= minLsn', () => {
    const book = new ReplicaBook(TTL);
    const req = book.requestSnapshot(P, 50, 0);
    expect(book.report(P, report('a', { appliedLsn: 10, outcomes: [outcome(req.id, 'declined')] }), 1).commands).toEqual([]);
    expect(book.report(P, report('a', { appliedLsn: 49 }), 2).commands).toEqual([]);
    expect(book.report(P, report('a', { appliedLsn: 50 }), 3).commands).toEqual([{ id: req.id, type: 'snapshot', minLsn: 50 }]);
  });

  it('done by any replica closes the request for all; answers are recorded, one per node, the latest kept', () => {
    const book = new ReplicaBook(TTL);
    const req = book.requestSnapshot(P, 5, 0);
    book.report(P, report('a', { outcomes: [outcome(req.id, 'declined', { reason: 'behind' })] }), 1);
    book.report(P, report('b', { appliedLsn: 9, outcomes: [outcome(req.id, 'done', { lsn: 9 })] }), 2);
    expect(book.report(P, report('a', { appliedLsn: 9 }), 3).commands).toEqual([]);
    expect(book.report(P, report('c', { appliedLsn: 9 }), 4).commands).toEqual([]);
    const [r] = book.requests(P, 5);
    expect(r!.status).toBe('done');
    expect(r!.answers).toEqual([
      { node: 'a', status: 'declined', reason: 'behind', at: 1 },
      { node: 'b', status: 'done', lsn: 9, at: 2 },
    ]);
    // A node's newer answer replaces its older one.
    book.report(P, report('a', { outcomes: [outcome(req.id, 'failed')] }), 6);
    expect(book.requests(P, 6)[0]!.answers.map((a) => [a.node, a.status])).toEqual([
      ['b', 'done'],
      ['a', 'failed'],
    ]);
  });

  it('keeps the last 16 answers of a request', () => {
    const book = new ReplicaBook(TTL);
    const req = book.requestSnapshot(P, 5, 0);
    for (let i = 0; i < 20; i++) book.report(P, report(`n${i}`, { outcomes: [outcome(req.id, 'failed')] }), i);
    expect(book.requests(P, 20)[0]!.answers.map((a) => a.node)).toEqual(Array.from({ length: 16 }, (_, i) => `n${i + 4}`));
  });

  it('an outcome for an unknown command id changes nothing', () => {
    const book = new ReplicaBook(TTL);
    const req = book.requestSnapshot(P, 5, 0);
    expect(snapshotCommands(book.report(P, report('a', { outcomes: [outcome('someone-else', 'done')] }), 1).commands)).toHaveLength(1);
    expect(book.requests(P, 1)).toEqual([req]);
  });

  it('the same pending minLsn is one request; another minLsn is another', () => {
    const book = new ReplicaBook(TTL);
    const a = book.requestSnapshot(P, 50, 0);
    expect(book.requestSnapshot(P, 50, 10)).toBe(a);
    const b = book.requestSnapshot(P, 60, 20);
    expect(b.id).not.toBe(a.id);
    expect(book.requests(P, 20).map((r) => r.minLsn)).toEqual([50, 60]);
    const cmds = book.report(P, report('n'), 21).commands;
    expect(cmds).toEqual([
      { id: a.id, type: 'snapshot', minLsn: 50 },
      { id: b.id, type: 'snapshot', minLsn: 60 },
    ]);
    // Once done, the same minLsn makes a new request.
    book.report(P, report('n', { appliedLsn: 60, outcomes: [outcome(a.id, 'done', { lsn: 60 })] }), 22);
    expect(book.requestSnapshot(P, 50, 23).id).not.toBe(a.id);
  });

  it('a request nobody served expires after REQUEST_TTL_MS (strictly): no longer sent, and a new one can be made', () => {
    const book = new ReplicaBook(TTL);
    const req = book.requestSnapshot(P, 50, 0);
    expect(book.requests(P, REQUEST_TTL_MS)[0]!.status).toBe('pending');
    expect(book.requests(P, REQUEST_TTL_MS + 1)[0]!.status).toBe('expired');
    expect(book.report(P, report('a', { appliedLsn: 99 }), REQUEST_TTL_MS + 2).commands).toEqual([]);
    const again = book.requestSnapshot(P, 50, REQUEST_TTL_MS + 3);
    expect(again.id).not.toBe(req.id);
    expect(again.status).toBe('pending');
  });

  it('keeps the 16 most recent requests a partition', () => {
    const book = new ReplicaBook(TTL);
    for (let i = 0; i < 20; i++) book.requestSnapshot(P, i, i);
    expect(book.requests(P, 20).map((r) => r.minLsn)).toEqual(Array.from({ length: 16 }, (_, i) => i + 4));
  });
});

describe('ReplicaBook delegated trims', () => {
  it('is sent only to a replica that reports log bounds still below the trim point', () => {
    const book = new ReplicaBook(TTL);
    const trim = book.delegateTrim(P, 100, 0);
    expect(book.pendingTrim(P)).toEqual(trim);
    expect(book.report(P, report('kafka-reader'), 1).commands).toEqual([]);
    expect(book.report(P, report('owner', { log: { start: 40, end: 200 } }), 2).commands).toEqual([{ id: trim.id, type: 'trim', beforeLsn: 100 }]);
  });

  it('a raised trim point replaces the pending trim; a lower or equal one keeps it', () => {
    const book = new ReplicaBook(TTL);
    const first = book.delegateTrim(P, 100, 0);
    expect(book.delegateTrim(P, 100, 1)).toBe(first);
    expect(book.delegateTrim(P, 80, 2)).toBe(first);
    const raised = book.delegateTrim(P, 150, 3);
    expect(raised.id).not.toBe(first.id);
    expect(book.pendingTrim(P)).toMatchObject({ beforeLsn: 150, requestedAt: 3 });
  });

  it('clears once a report shows the log start at or past the point, or the trim is reported done', () => {
    const book = new ReplicaBook(TTL);
    book.delegateTrim(P, 100, 0);
    expect(book.report(P, report('owner', { log: { start: 100, end: 200 } }), 1).commands).toEqual([]);
    expect(book.pendingTrim(P)).toBeUndefined();

    const trim = book.delegateTrim(P, 300, 2);
    book.report(P, report('owner', { log: { start: 0, end: 400 }, outcomes: [outcome(trim.id, 'failed')] }), 3);
    expect(book.pendingTrim(P)).toBe(trim); // a failure leaves it to be retried
    expect(book.report(P, report('owner', { log: { start: 0, end: 400 }, outcomes: [outcome(trim.id, 'done')] }), 4).commands).toEqual([]);
    expect(book.pendingTrim(P)).toBeUndefined();
  });
});
