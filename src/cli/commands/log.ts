import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { badInput } from '../../core/errors.js';
import { parseLsn, validatePartition } from '../../core/names.js';
import { isRecordTimestamp } from '../../log/records.js';
import type { AppendRecord } from '../../log/types.js';
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
    const r = parsed as { key?: unknown; value?: unknown; timestamp?: unknown };
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badInput(`${source}:${i + 1}: expected an object {"key": string, "value": any}`);
    if (typeof r.key !== 'string' || r.key.length === 0) throw badInput(`${source}:${i + 1}: "key" must be a non-empty string`);
    if (r.value === undefined) throw badInput(`${source}:${i + 1}: "value" is missing`);
    // The rule every log applies, checked here too so the error names the line.
    if (r.timestamp !== undefined && !isRecordTimestamp(r.timestamp)) {
      throw badInput(`${source}:${i + 1}: "timestamp" must be a non-negative integer (milliseconds since the epoch)`);
    }
    records.push({ key: r.key, value: r.value, ...(typeof r.timestamp === 'number' ? { timestamp: r.timestamp } : {}) });
  }
  return records;
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
    .description('append records from JSON lines ({"key": string, "value": any} per line); all or nothing')
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
    .description('first retained LSN (start) and last LSN + 1 (end)')
    .requiredOption('--partition <p>', 'partition name')
    .action(
      action(async (ctx, opts: { partition: string }) => {
        const partition = validatePartition(opts.partition);
        const info = await ctx.cairn.log.info(partition);
        ctx.output({ partition, ...info }, () => `${partition}: start ${info.start}, end ${info.end} (${info.end - info.start} records)`);
      }),
    );

  log
    .command('trim')
    .description('delete records with LSN < --before (never moves the start backwards)')
    .requiredOption('--partition <p>', 'partition name')
    .requiredOption('--before <lsn>', 'first LSN to keep')
    .action(
      action(async (ctx, opts: { partition: string; before: string }) => {
        const partition = validatePartition(opts.partition);
        const before = parseLsn(opts.before, '--before');
        const info = await ctx.cairn.log.trim(partition, before);
        ctx.output({ partition, ...info }, () => `${partition}: log now starts at ${info.start} (end ${info.end})`);
      }),
    );
}
