import type { Log } from '../log/types.js';

/**
 * How the coordinator reaches the log. A log that admits several processes (Kafka) is
 * opened once and kept. A single-process log (embedded) is opened per operation and closed
 * straight after, so the coordinator holds its lock for milliseconds and never stands in a
 * processor's way; while a processor holds it, callers see LOG_BUSY and fall back to what
 * that processor reports (see Coordinator).
 */
export class CoordinatorLog {
  private shared: Log | undefined;

  constructor(private readonly create: () => Log) {}

  async use<T>(fn: (log: Log) => Promise<T>): Promise<T> {
    if (this.shared) return fn(this.shared);
    const log = this.create();
    if (log.capabilities.multiProcess) {
      this.shared = log;
      return fn(log);
    }
    try {
      return await fn(log);
    } finally {
      await log.close();
    }
  }

  async close(): Promise<void> {
    const log = this.shared;
    this.shared = undefined;
    await log?.close();
  }
}
