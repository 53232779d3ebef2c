import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CairnError, badInput } from '../core/errors.js';
import type { LogRecord } from '../log/types.js';

/** What a processor's `apply` sees: reads see the batch's own writes; writes commit with the batch. */
export interface ProcessorState {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): void;
  del(key: string): void;
}

export interface Processor {
  name: string;
  apply(record: LogRecord, state: ProcessorState): void | Promise<void>;
}

export function assertProcessor(candidate: unknown, from: string): Processor {
  const p = candidate as Partial<Processor> | undefined;
  if (!p || typeof p !== 'object' || typeof p.name !== 'string' || p.name.length === 0 || typeof p.apply !== 'function') {
    throw badInput(`${from}: the default export must be { name: string, apply(record, state) }`);
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
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(pathToFileURL(abs).href, import.meta.url)) as { default?: unknown };
    } else {
      mod = (await import(pathToFileURL(abs).href)) as { default?: unknown };
    }
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot load processor ${path}: ${(err as Error).message}`, { cause: err });
  }
  // tsImport of a CommonJS-shaped module nests the default export one level deeper.
  const candidate = (mod.default as { default?: unknown } | undefined)?.default ?? mod.default;
  return assertProcessor(candidate, path);
}
