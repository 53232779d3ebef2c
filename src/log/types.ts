/**
 * The log abstraction: one ordered stream of records per partition, addressed by LSN.
 * LSNs are dense for the embedded log and Kafka offsets for Kafka (dense unless the topic
 * is compacted or transactional; readers must not assume lsn+1 follows lsn).
 */
/** A Kafka record header. Names may repeat; order is kept. */
export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

/**
 * A record as the log holds it: bytes, decoded by nobody yet. The runtime decodes the value
 * by the processor's `valueCodec` (processor-module.ts), so one log serves processors that
 * read it as JSON, text or bytes, and a value that does not decode is the processor's
 * problem (the onBadRecord policy), not the log's.
 */
export interface LogRecord {
  lsn: number;
  /**
   * The key as UTF-8 text. null when the record has no key, and also when its key is not
   * valid UTF-8 (`keyBytes` then holds it): a lossy decode would merge distinct keys.
   */
  key: string | null;
  /** The key's bytes; null only when the record has no key. */
  keyBytes: Buffer | null;
  /** The value's bytes; null for a tombstone (a record without a value). */
  value: Buffer | null;
  /** In the order they were written; [] when none. */
  headers: RecordHeader[];
  /** Milliseconds since the epoch, as appended. */
  timestamp: number;
}

export interface AppendRecord {
  /** null (or absent) appends a record without a key; bytes are stored as given. */
  key?: string | Uint8Array | null;
  /**
   * null or absent appends a tombstone; bytes (Buffer, Uint8Array) are stored as given;
   * anything else is stored as its JSON text.
   */
  value?: unknown;
  headers?: Array<{ key: string; value: string | Uint8Array }> | Record<string, string | Uint8Array>;
  timestamp?: number;
}

export interface LogInfo {
  /** First retained LSN (the trim point). */
  start: number;
  /**
   * The next LSN to be written. start == end means empty. Kafka: the offset a read_committed
   * reader can reach (the last stable offset, as ListOffsets answers read_committed), which
   * is the high watermark whenever no transaction is undecided; while one is (open, or
   * committed with its markers not yet written) it is that transaction's first offset.
   * Not a record count: on Kafka the offsets below it include transaction markers, which
   * hold no record (each transaction leaves one), so end − start counts offsets, and
   * records only where LSNs are dense (the embedded log).
   */
  end: number;
}

export interface LogCapabilities {
  readonly name: string;
  /** Whether a writer in another process can append while this one reads. */
  readonly multiProcess: boolean;
  /** Whether `joinGroup` balances partitions over workers (Kafka's consumer-group protocol). */
  readonly groups: boolean;
}

export interface GroupOptions {
  /** The group's name; every worker with the same name shares the topic's partitions. */
  group: string;
  /** This worker's node name; other members see it (GroupMembership.view). */
  member: string;
  /** A member silent this long is dropped and its partitions move (Kafka session.timeout.ms). */
  sessionTimeoutMs: number;
  /**
   * Called after each rebalance with the Cairn partitions this member gained and lost. Not
   * awaited: the protocol does not wait for a member to finish with what it lost, which is
   * why ownership is also checked where it matters (snapshot publication, offset commits).
   */
  onAssignment(gained: string[], lost: string[]): void;
}

export interface GroupView {
  /** No rebalance under way: the assignment below is the one every member works from. */
  stable: boolean;
  members: Set<string>;
  /** Partition name → node it is assigned to (stable groups only; empty otherwise). */
  owners: Map<string, string>;
}

/** A worker's membership in a group (GroupOptions). */
export interface GroupMembership {
  /** The partitions this member owns as of the last rebalance it saw. */
  readonly assigned: ReadonlySet<string>;
  /**
   * Records `offset` (applied LSN + 1) as the group's position for `partition`, where
   * Kafka's tools show it and its lag. Never where Cairn resumes from (local state and
   * snapshots are). FENCED when the broker no longer counts this member as the owner.
   */
  commit(partition: string, offset: number): Promise<void>;
  /**
   * The group as the broker sees it now: whether a rebalance is under way, each member's
   * node name, and which node each partition is assigned to. Members learn of a rebalance
   * at slightly different moments; this is the one view they all agree on.
   */
  view(): Promise<GroupView>;
  /** Leaves the group (its partitions move to the other members at once). */
  leave(): Promise<void>;
}

export interface ReadOptions {
  /** Upper bound on records returned. */
  maxRecords: number;
  /** Return at most records with lsn <= this. */
  toLsn?: number;
  /** When nothing is available yet, wait up to this long for new records before returning []. */
  waitMs?: number;
  signal?: AbortSignal;
}

export interface Log {
  readonly capabilities: LogCapabilities;
  /** Appends all records or none; returns the first and last LSN assigned. */
  append(partition: string, records: AppendRecord[]): Promise<{ first: number; last: number }>;
  /**
   * Records with lsn >= fromLsn in order. Throws CairnError TRIM_GAP (details: { requested,
   * start }) when fromLsn < start: a reader must never be silently moved forward.
   */
  read(partition: string, fromLsn: number, options: ReadOptions): Promise<LogRecord[]>;
  /** Read-only. The embedded log answers {0, 0} for a partition never appended to, without creating it. */
  info(partition: string): Promise<LogInfo>;
  /** Deletes records with lsn < beforeLsn; never moves the start backwards; clamps to end. */
  trim(partition: string, beforeLsn: number): Promise<LogInfo>;
  /**
   * The partitions this log holds, by Cairn name, sorted: what a coordinator watches. The
   * embedded log lists the partitions appended to; Kafka every partition of the topic.
   */
  partitions(): Promise<string[]>;
  /** A stable description of where a partition's records come from, e.g. `embedded:p0`. */
  source(partition: string): string;
  /** Joins a group that balances the partitions over workers; only where capabilities.groups. */
  joinGroup?(options: GroupOptions): Promise<GroupMembership>;
  close(): Promise<void>;
}
