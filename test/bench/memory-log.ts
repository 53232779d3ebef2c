import { CairnError } from '../../src/core/errors.js';
import { checkAppendRecord, keyText } from '../../src/log/records.js';
import type { AppendRecord, Log, LogInfo, LogRecord, ReadOptions } from '../../src/log/types.js';

/** An array-backed log so the apply benchmark measures the runtime, not a log backend. */
export class MemoryLog implements Log {
  readonly capabilities = { name: 'memory', multiProcess: false, groups: false };
  private readonly records: LogRecord[] = [];

  async append(_partition: string, records: AppendRecord[]): Promise<{ first: number; last: number }> {
    const first = this.records.length;
    for (const r of records) {
      // The form a real log hands out (records.ts): checked, bytes in, bytes out.
      const c = checkAppendRecord(r, this.records.length, 0);
      this.records.push({ lsn: this.records.length, key: keyText(c.key), keyBytes: c.key, value: c.value, headers: c.headers, timestamp: c.timestamp });
    }
    return { first, last: this.records.length - 1 };
  }

  async read(_partition: string, fromLsn: number, options: ReadOptions): Promise<LogRecord[]> {
    if (fromLsn < 0) throw new CairnError('TRIM_GAP', 'below start');
    const end = Math.min(this.records.length, fromLsn + options.maxRecords, options.toLsn === undefined ? Infinity : options.toLsn + 1);
    return this.records.slice(fromLsn, end);
  }

  async info(): Promise<LogInfo> {
    return { start: 0, end: this.records.length };
  }

  async trim(): Promise<LogInfo> {
    return this.info();
  }

  async partitions(): Promise<string[]> {
    return [];
  }

  source(partition: string): string {
    return `memory:${partition}`;
  }

  async close(): Promise<void> {}
}
