import { SingleBar, Presets } from 'cli-progress';
import type { Command } from 'commander';
import { loadConfig, type CairnConfig } from '../core/config.js';
import { CairnError, toCairnError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { Cairn } from '../runtime/cairn.js';

export interface GlobalOptions {
  config?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/**
 * What every command gets: its global flags, the validated config and a lazily built Cairn.
 * Commands validate their own arguments before touching `cairn`, so bad input writes nothing.
 */
export class CliContext {
  private configValue: CairnConfig | undefined;
  private cairnValue: Cairn | undefined;
  readonly logger: Logger;

  constructor(readonly globals: GlobalOptions) {
    // Short commands print results, not logs; `run` raises this to info (see run.ts).
    this.logger = createLogger({ level: globals.verbose ? 'info' : globals.quiet || globals.json ? 'error' : 'warn' });
  }

  static of(command: Command): CliContext {
    return new CliContext(command.optsWithGlobals<GlobalOptions>());
  }

  get config(): CairnConfig {
    this.configValue ??= loadConfig(this.globals.config ? { file: this.globals.config } : {});
    return this.configValue;
  }

  get cairn(): Cairn {
    this.cairnValue ??= new Cairn(this.config, { logger: this.logger });
    return this.cairnValue;
  }

  get json(): boolean {
    return Boolean(this.globals.json);
  }

  /** Prints a result: one JSON document with --json, else the human rendering. */
  output(result: unknown, human: () => string): void {
    if (this.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (!this.globals.quiet) process.stdout.write(`${human()}\n`);
  }

  /** A progress bar on a TTY only; never in --json or --quiet mode. */
  progress(label: string): ((done: number, total: number) => void) & { stop(): void } {
    const enabled = process.stderr.isTTY && !this.json && !this.globals.quiet;
    let bar: SingleBar | undefined;
    const update = ((done: number, total: number) => {
      if (!enabled) return;
      if (!bar) {
        bar = new SingleBar({ format: `${label} [{bar}] {percentage}% | {done}/{size}`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
        bar.start(total, 0, { done: mib(0), size: mib(total) });
      }
      bar.setTotal(total);
      bar.update(done, { done: mib(done), size: mib(total) });
    }) as ((done: number, total: number) => void) & { stop(): void };
    update.stop = () => bar?.stop();
    return update;
  }

  async close(): Promise<void> {
    await this.cairnValue?.close();
  }
}

/** Set once stdout's reader has gone (`cairn … | head -1`): the rest of the output is dropped. */
let readerGone = false;

/**
 * Installed once by main. A reader that stops early (EPIPE) has what it wanted: that is not
 * an error of the command, so it must not become an uncaught exception with a stack trace.
 */
export function guardOutputStreams(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') {
      readerGone = true;
      return;
    }
    process.stderr.write(`cairn: error: cannot write to stdout: ${err.message} [INTERNAL]\n`);
    process.exitCode = 1;
  });
  // Nowhere left to report a failure to write errors; never crash over it.
  process.stderr.on('error', () => undefined);
}

/** Writes to stdout, waiting while its buffer is full; false once the reader has gone (stop producing). */
export async function writeStdout(text: string): Promise<boolean> {
  const out = process.stdout;
  if (readerGone || out.destroyed) return false;
  if (out.write(text)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      for (const event of ['drain', 'close', 'error'] as const) out.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'close', 'error'] as const) out.once(event, done);
  });
  return !readerGone && !out.destroyed;
}

export function mib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Runs a command body with the uniform error contract: one line on stderr, exit 1 or 2. */
export function action<A extends unknown[]>(body: (ctx: CliContext, ...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const ctx = CliContext.of(command);
    let code = 0;
    try {
      code = (await body(ctx, ...args.slice(0, -1) as A)) ?? 0;
    } catch (err) {
      code = reportError(err, ctx.json);
    } finally {
      await bounded(ctx.close(), CLOSE_TIMEOUT_MS).catch(() => undefined);
    }
    process.exitCode = code;
    exitOnceIdle(code, ctx);
  };
}

/** Closing the store and log clients is bounded (each of their calls is, too). */
const CLOSE_TIMEOUT_MS = 45_000;
/** How long a finished command waits for the event loop to empty before it exits anyway. */
const EXIT_GRACE_MS = 3_000;

function bounded(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}

/**
 * A finished command exits even when a client library still holds a socket or a timer (a
 * Kafka consumer whose broker vanished mid-disconnect can retry for minutes): the work is
 * done and reported, and "never hang" includes exiting. The timer is unref'd, so a process
 * whose event loop empties exits on its own, sooner.
 */
function exitOnceIdle(code: number, ctx: CliContext): void {
  setTimeout(() => {
    ctx.logger.debug({ resources: process.getActiveResourcesInfo() }, 'handles still open after the command finished; exiting');
    process.exit(code);
  }, EXIT_GRACE_MS).unref();
}

export function reportError(err: unknown, json: boolean): number {
  const e = toCairnError(err);
  process.stderr.write(`cairn: error: ${e.message.split('\n')[0]} [${e.code}]\n`);
  // The error's own JSON form: code, kind (what to do about it), message, retryable, details.
  if (json) process.stdout.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
  if (e.code === 'INTERNAL' && process.env.CAIRN_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
  return e.exitCode;
}

/** A TCP port, 0-65535 (0: any free port). */
export function parsePort(text: string, flag: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 65535) throw new CairnError('BAD_INPUT', `invalid ${flag} ${JSON.stringify(text)}: expected 0-65535`);
  return Number(text);
}

export function requireOption<T>(value: T | undefined, flag: string): T {
  if (value === undefined || value === '') throw new CairnError('BAD_INPUT', `missing required option ${flag}`);
  return value;
}
