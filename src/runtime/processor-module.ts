import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CairnError, badInput } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { LogRecord } from '../log/types.js';

/**
 * What a processor's `apply` sees: reads see the batch's own writes; writes commit with the
 * batch. `S` is the type of the values the processor keeps (stored as JSON).
 */
export interface ProcessorState<S = unknown> {
  get(key: string): Promise<S | undefined>;
  put(key: string, value: S): void;
  del(key: string): void;
}

/** How record values reach `apply`: parsed JSON, UTF-8 text, or the bytes themselves. */
export type ValueCodec = 'json' | 'string' | 'bytes';

/** A log record as `apply` sees it: the value decoded, a tombstone as `null`. */
export interface ProcessorRecord<V = unknown> extends Omit<LogRecord, 'value'> {
  value: V | null;
}

/** Given to `init`: which partition this processor instance is about to apply, and from where. */
export interface ProcessorContext {
  /** The Cairn partition whose state is written (a fork's own name when replaying into a fork). */
  partition: string;
  /** Where the records come from, e.g. `kafka:orders/3` or `embedded:p0`. */
  source: string;
  /** The last LSN already in the state (-1 when empty): the next record applied is after it. */
  appliedLsn: number;
  logger: Logger;
}

/**
 * A stream processor: `apply` folds each record into the partition's state. `V` is the
 * record value type, `S` the state value type.
 *
 * Values are decoded before `apply` by `decode(bytes)` when given (e.g. a zod schema's
 * parse), else by `valueCodec` (default 'json'). A tombstone (a record without a value)
 * reaches `apply` as `value: null` and is never passed to `decode`. A value that does not
 * decode is a bad record (runtime.onBadRecord: stop the partition, or skip and count it).
 *
 * Lifecycle, as Kafka Streams' Processor: `init(ctx)` once before a run of a partition
 * applies its first record, `close()` once after it stops (also when it failed). One
 * processor object may serve several partitions of one process, one `init` each.
 */
export interface Processor<V = unknown, S = unknown> {
  name: string;
  valueCodec?: ValueCodec;
  decode?(value: Buffer): V;
  init?(ctx: ProcessorContext): void | Promise<void>;
  apply(record: ProcessorRecord<V>, state: ProcessorState<S>): void | Promise<void>;
  close?(ctx: ProcessorContext): void | Promise<void>;
}

const VALUE_CODECS: readonly ValueCodec[] = ['json', 'string', 'bytes'];

export function assertProcessor(candidate: unknown, from: string): Processor {
  const p = candidate as Partial<Processor> | undefined;
  if (!p || typeof p !== 'object' || typeof p.name !== 'string' || p.name.length === 0 || typeof p.apply !== 'function') {
    throw badInput(`${from}: the default export must be { name: string, apply(record, state) }`);
  }
  if (p.valueCodec !== undefined && !VALUE_CODECS.includes(p.valueCodec)) {
    throw badInput(`${from}: valueCodec must be one of ${VALUE_CODECS.join(', ')} (got ${JSON.stringify(p.valueCodec)})`);
  }
  for (const hook of ['decode', 'init', 'close'] as const) {
    if (p[hook] !== undefined && typeof p[hook] !== 'function') throw badInput(`${from}: ${hook} must be a function`);
  }
  return p as Processor;
}

/**
 * Loads a processor module from a path. `.ts` (and `.mts`/`.cts`) files go through tsx's
 * scoped loader, so users run TypeScript processors without a build step and without the
 * loader leaking into the rest of the process.
 */
export async function loadProcessor(path: string, cwd = process.cwd()): Promise<Processor> {
  const abs = resolve(cwd, path);
  if (!existsSync(abs)) throw badInput(`processor module ${path} does not exist`);
  let mod: { default?: unknown };
  try {
    if (/\.[mc]?ts$/.test(abs)) {
      // tsx emits source maps: with them on, a stack names the .ts line, not the transpiled one.
      process.setSourceMapsEnabled(true);
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(pathToFileURL(abs).href, import.meta.url)) as { default?: unknown };
    } else {
      mod = (await import(pathToFileURL(abs).href)) as { default?: unknown };
    }
  } catch (err) {
    throw loadError(path, abs, err);
  }
  // tsImport of a CommonJS-shaped module nests the default export one level deeper.
  const candidate = (mod.default as { default?: unknown } | undefined)?.default ?? mod.default;
  return assertProcessor(candidate, path);
}

export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/**
 * A module that does not load, as one line that says where: `file:line:col` of the error
 * (also in `details`), its type and its first message line. The CLI prints only the first
 * line of a message, so a location that only lives further down (esbuild's transform
 * errors) or only in the stack (a throw at import time) would otherwise be lost.
 */
function loadError(path: string, abs: string, err: unknown): CairnError {
  const e = err instanceof Error ? err : new Error(String(err));
  const where = locate(e, abs);
  const transform = /^Transform failed with \d+ errors?:\n.*?: (?:ERROR: )?(.*)$/m.exec(e.message);
  const text = transform ? transform[1]! : e.message.split('\n')[0]!;
  const type = transform ? 'SyntaxError' : e.name;
  const at = where ? `${where.file}:${where.line}:${where.column}: ` : '';
  return new CairnError('BAD_INPUT', `cannot load processor ${path}: ${at}${type}: ${text}`, {
    cause: err,
    details: { module: abs, ...(where ? { location: where } : {}) },
  });
}

function locate(err: Error, abs: string): SourceLocation | undefined {
  // esbuild (tsx): "Transform failed with 1 error:\n/abs/x.ts:4:32: ERROR: ..." (column 0-based).
  const esbuild = /^(.+?):(\d+):(\d+): ERROR: /m.exec(err.message);
  if (esbuild) return { file: esbuild[1]!, line: Number(esbuild[2]), column: Number(esbuild[3]) + 1 };
  const frame = firstUserFrame(err.stack ?? '');
  if (frame) return frame;
  // V8 keeps a module's syntax error position out of the error object (Node prints it only
  // for uncaught errors); the parser's own report through `node --check` says it.
  if (err.name === 'SyntaxError') return checkSyntax(abs);
  return undefined;
}

/** This file, as stack frames name it (built .js, or .ts when run from source). */
const SELF = fileURLToPath(import.meta.url).replace(/\.[jt]s$/, '');
/** The loader's own machinery: its frames are never where a processor went wrong. */
const LOADER = /\/node_modules\/(?:tsx|esbuild)\//;

/**
 * The first stack frame in a file, above the call that imported the module: where it threw
 * while loading. Node's internals, tsx's loader and code tsx ran from a data: URL (whose
 * lines are not the source's) are skipped; none at all is better than a wrong one.
 */
function firstUserFrame(stack: string): SourceLocation | undefined {
  for (const line of stack.split('\n').slice(1)) {
    // "at fn (LOCATION)" or "at LOCATION"
    const frame = /^at (?:.*\((.+)\)|(.+))$/.exec(line.trim());
    const m = /^((?:file:\/\/|\/).*):(\d+):(\d+)$/.exec(frame?.[1] ?? frame?.[2] ?? '');
    if (!m) continue;
    const url = m[1]!.replace(/\?.*$/, ''); // tsx appends ?tsx-namespace=…
    const file = url.startsWith('file:') ? fileURLToPath(url) : url;
    if (file.replace(/\.[jt]s$/, '') === SELF) return undefined;
    if (LOADER.test(file)) continue;
    return { file, line: Number(m[2]), column: Number(m[3]) };
  }
  return undefined;
}

function checkSyntax(abs: string): SourceLocation | undefined {
  const r = spawnSync(process.execPath, ['--check', abs], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, NODE_OPTIONS: '' } });
  // "<file>:<line>\n<source line>\n<spaces>^^^\n\nSyntaxError: ..."
  const lines = (r.stderr ?? '').split('\n');
  const head = lines.findIndex((l) => /:\d+$/.test(l));
  if (head < 0) return undefined;
  const m = /^(.*):(\d+)$/.exec(lines[head]!)!;
  const caret = lines[head + 2]?.indexOf('^') ?? -1;
  const file = m[1]!.startsWith('file:') ? fileURLToPath(m[1]!) : m[1]!;
  return { file, line: Number(m[2]), column: caret >= 0 ? caret + 1 : 1 };
}
