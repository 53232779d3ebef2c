import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CairnError, badInput } from '../../core/errors.js';
import { decideTrim, readArchived } from '../../coordinator/trim-policy.js';
import { parseLsn, validatePartition } from '../../core/names.js';
import { isRecordTimestamp } from '../../log/records.js';
import type { AppendRecord, Log, LogInfo } from '../../log/types.js';
import { action } from '../context.js';

/** Parses JSONL into records, rejecting the whole input on the first bad line. */
export function parseJsonl(text: string, source: string): AppendRecord[] {
  const records: AppendRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw badInput(`${source}:${i + 1}: not valid JSON`);
    }
    const r = parsed as { key?: unknown; value?: unknown; timestamp?: unknown; headers?: unknown };
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badInput(`${source}:${i + 1}: expected an object {"key": string | null, "value": any}`);
    if (r.key !== null && typeof r.key !== 'string') throw badInput(`${source}:${i + 1}: "key" must be a string or null`);
    // Absent is a typo more often than a tombstone: a tombstone is written "value": null.
    if (r.value === undefined) throw badInput(`${source}:${i + 1}: "value" is missing (null appends a tombstone)`);
    // The rules every log applies, checked here too so the error names the line.
    if (r.timestamp !== undefined && !isRecordTimestamp(r.timestamp)) {
      throw badInput(`${source}:${i + 1}: "timestamp" must be a non-negative integer (milliseconds since the epoch)`);
    }
    if (r.headers !== undefined && !isStringMap(r.headers)) throw badInput(`${source}:${i + 1}: "headers" must be an object of strings`);
    records.push({
      key: r.key,
      value: r.value,
      ...(typeof r.timestamp === 'number' ? { timestamp: r.timestamp } : {}),
      ...(r.headers !== undefined ? { headers: r.headers as Record<string, string> } : {}),
    });
  }
  return records;
}

function isStringMap(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

async function readInput(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8').catch((err: Error) => Promise.reject(badInput(`cannot read ${file}: ${err.message}`)));
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerLog(program: Command): void {
  const log = program.command('log').description('append to, inspect and trim the log');

  log
    .command('append')
    .description('append records from JSON lines ({"key": string|null, "value": any, "headers"?: {name: string}} per line; "value": null is a tombstone); all or nothing')
    .requiredOption('--partition <p>', 'partition name')
    .requiredOption('--jsonl <file>', "JSON lines file, '-' for stdin")
    .action(
      action(async (ctx, opts: { partition: string; jsonl: string }) => {
        const partition = validatePartition(opts.partition);
        const records = parseJsonl(await readInput(opts.jsonl), opts.jsonl === '-' ? 'stdin' : opts.jsonl);
        if (records.length === 0) throw badInput(`${opts.jsonl}: no records`);
        const result = await ctx.cairn.log.append(partition, records);
        ctx.output({ partition, count: records.length, ...result }, () => `appended ${records.length} records to ${partition}: LSN ${result.first}..${result.last}`);
      }),
    );

  log
    .command('info')
    .description('first retained LSN (start) and the next LSN to be written (end)')
    .requiredOption('--partition <p>', 'partition name')
    .action(
      action(async (ctx, opts: { partition: string }) => {
        const partition = validatePartition(opts.partition);
        const source = ctx.cairn.log;
        // Read-only: answers without creating the partition (embedded.ts info). Kafka says
        // NOT_FOUND itself for a partition the topic lacks; the embedded log answers an empty
        // {0, 0} for one never appended to, which for this command is "no such partition".
        const info = await source.info(partition);
        if (source.capabilities.name === 'embedded' && info.end === 0 && !(await source.partitions()).includes(partition)) {
          throw new CairnError('NOT_FOUND', `partition ${partition} does not exist in the log: nothing was ever appended to it`, { details: { partition } });
        }
        ctx.output({ partition, ...info }, () => `${partition}: start ${info.start}, end ${info.end} (${describeSpan(source, info)})`);
      }),
    );

  log
    .command('trim')
    .description('delete records with LSN < --before; refused past what the snapshots archive unless --force')
    .requiredOption('--partition <p>', 'partition name')
    .requiredOption('--before <lsn>', 'first LSN to keep')
    .option('--force', 'trim even records that no retained snapshot covers (nodes behind them cannot bootstrap)')
    .option('--dry-run', 'show what would be trimmed, and whether it is allowed and why, without trimming')
    .action(
      action(async (ctx, opts: { partition: string; before: string; force?: boolean; dryRun?: boolean }) => {
        const partition = validatePartition(opts.partition);
        const before = parseLsn(opts.before, '--before');
        const source = ctx.cairn.log;
        const info = await source.info(partition);
        const archived = await readArchived(ctx.cairn.placement, partition);
        const decision = decideManualTrim(before, info, archived.archived?.lsn);
        // With several stores, which one sets the bound (or holds the trim back) comes first.
        if (archived.note) decision.reason = `${archived.note}; ${decision.reason}`;
        const forced = Boolean(opts.force) && !decision.allowed;
        const base = {
          partition,
          requested: before,
          archivedLsn: decision.archivedLsn,
          ...(archived.stores ? { archivedByStore: archived.stores } : {}),
          safeBefore: decision.safeBefore,
          allowed: decision.allowed,
          reason: decision.reason,
        };
        if (opts.dryRun) {
          const { removes } = decision;
          const wouldTrim = removes.count > 0 && (decision.allowed || Boolean(opts.force));
          const verdict = decision.allowed ? 'allowed' : opts.force ? 'refused without --force; with --force it trims anyway' : `refused (at most --before ${decision.safeBefore} is safe)`;
          const effect = wouldTrim
            ? `it would remove LSN ${removes.from}..${removes.to} (${removes.count} LSNs); the log would start at ${removes.to + 1}`
            : removes.count > 0
              ? `nothing would be trimmed (it would remove LSN ${removes.from}..${removes.to})`
              : 'nothing would be trimmed';
          ctx.output({ ...base, dryRun: true, ...(opts.force ? { force: true } : {}), log: info, removes, wouldTrim }, () => `${partition}: dry run: --before ${before} is ${verdict}: ${decision.reason}\n${effect}`);
          return;
        }
        if (!decision.allowed && !opts.force) {
          throw new CairnError(
            'CONDITION_FAILED',
            `refusing to trim ${partition} before ${before}: at most --before ${decision.safeBefore} is safe (${decision.reason}); --dry-run shows the decision, --force trims anyway`,
            { details: { partition, requested: before, safeBefore: decision.safeBefore, archivedLsn: decision.archivedLsn, logStart: info.start, logEnd: info.end } },
          );
        }
        if (forced) ctx.logger.warn({ partition, requested: before, safeBefore: decision.safeBefore, archivedLsn: decision.archivedLsn }, 'forced trim past the archived LSN: nodes behind it cannot bootstrap');
        const after = await source.trim(partition, before);
        ctx.output({ ...base, ...(forced ? { forced: true } : {}), ...after }, () => `${partition}: log now starts at ${after.start} (end ${after.end})${forced ? `; forced past the safe --before ${decision.safeBefore}` : ''}`);
      }),
    );
}

/**
 * What `end - start` is: a record count only where LSNs are dense (the embedded log). On
 * Kafka the offsets below `end` include transaction markers that hold no record, so it is a
 * number of offsets, never called records (it once said 24001 records where 22000 existed).
 */
function describeSpan(source: Log, info: LogInfo): string {
  const span = info.end - info.start;
  if (source.capabilities.name === 'embedded') return `${span} records`;
  return `end is the next offset to be written; ${span} offsets, transaction markers included: not a record count`;
}

export interface ManualTrimDecision {
  /** Lowest LSN among the retained snapshots that verify (as the coordinator reads it); null: none. */
  archivedLsn: number | null;
  /** The highest log start a trim may leave: archived + 1 within the log's bounds (the log start without a snapshot). */
  safeBefore: number;
  allowed: boolean;
  reason: string;
  /** The LSNs a trim to --before would remove (count 0: none). */
  removes: { from: number; to: number; count: number };
}

/**
 * The rule `cairn log trim` applies by hand, the coordinator's (src/coordinator/trim-policy.ts):
 * records up to the archived LSN may go, so the log may start at most at archived + 1; with
 * no snapshot, nothing may go. What counts is what the trim would really remove (a trim
 * never moves the start backwards and clamps to the end), so a trim that removes nothing is
 * always allowed.
 */
export function decideManualTrim(before: number, info: LogInfo, archived: number | undefined): ManualTrimDecision {
  const archivedLsn = archived ?? null;
  // The bound is the coordinator's own (policy `snapshot`, no delay): one rule, one place.
  const safeBefore = decideTrim({ policy: 'snapshot', log: info, archivedLsn: archived, replicas: [], replicaTtlMs: 0, now: 0 }).trimBefore;
  const target = Math.max(info.start, Math.min(before, info.end));
  const removes = { from: info.start, to: target - 1, count: target - info.start };
  const archive = archived === undefined ? 'no snapshot: nothing is archived' : `the archived LSN is ${archived} (oldest retained snapshot)`;
  if (removes.count === 0) return { archivedLsn, safeBefore, allowed: true, reason: `nothing to trim below ${before}: the log starts at ${info.start}`, removes };
  if (target <= safeBefore) return { archivedLsn, safeBefore, allowed: true, reason: `${archive}, so records up to it may go`, removes };
  return { archivedLsn, safeBefore, allowed: false, reason: `${archive}; records ${Math.max(safeBefore, info.start)}..${target - 1} are in no snapshot`, removes };
}
