import type { AppendRecord, GroupMembership, GroupOptions, Log, LogCapabilities, LogInfo, LogRecord, ReadOptions } from './types.js';

/**
 * A Log whose backend is loaded on first use. The Kafka backend pulls in kafkajs; a worker on
 * the embedded log, a CLI command that fails validation, or `import 'cairn-state'` should not
 * pay for it (createLog hands Kafka out this way). What must answer before anything is loaded
 * — capabilities and the partitions' source names — is given up front.
 */
export class LazyLog implements Log {
  private loading: Promise<Log> | undefined;
  readonly joinGroup?: (options: GroupOptions) => Promise<GroupMembership>;

  constructor(
    readonly capabilities: LogCapabilities,
    private readonly sourceOf: (partition: string) => string,
    private readonly load: () => Promise<Log>,
  ) {
    if (capabilities.groups) this.joinGroup = async (options) => this.groups(await this.backend()).joinGroup(options);
  }

  private backend(): Promise<Log> {
    this.loading ??= this.load();
    return this.loading;
  }

  private groups(log: Log): Required<Pick<Log, 'joinGroup'>> {
    if (!log.joinGroup) throw new TypeError(`the ${log.capabilities.name} log declares groups but has no joinGroup`);
    return { joinGroup: log.joinGroup.bind(log) };
  }

  source(partition: string): string {
    return this.sourceOf(partition);
  }

  async append(partition: string, records: AppendRecord[]): Promise<{ first: number; last: number }> {
    return (await this.backend()).append(partition, records);
  }

  async read(partition: string, fromLsn: number, options: ReadOptions): Promise<LogRecord[]> {
    return (await this.backend()).read(partition, fromLsn, options);
  }

  async info(partition: string): Promise<LogInfo> {
    return (await this.backend()).info(partition);
  }

  async trim(partition: string, beforeLsn: number): Promise<LogInfo> {
    return (await this.backend()).trim(partition, beforeLsn);
  }

  async partitions(): Promise<string[]> {
    return (await this.backend()).partitions();
  }

  /** A log never loaded has nothing to close (and closing must not load it). */
  async close(): Promise<void> {
    if (this.loading) await (await this.loading).close();
  }
}
