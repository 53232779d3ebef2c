import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured logs go to stderr as JSON lines so that stdout stays free for command output
 * (`--json` promises exactly one document there). `CAIRN_LOG_LEVEL` overrides the level.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  const level = process.env.CAIRN_LOG_LEVEL ?? options.level ?? 'info';
  return pino({ name: options.name ?? 'cairn', level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything: the library default, so embedding code opts in to logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
