/**
 * Every user-visible default of Cairn, in one place: what a config file field, a library
 * option or a CLI flag means when it is left out. The config schema (config.ts,
 * placement-config.ts), the backends (src/store, src/log), the runtime and the CLI take
 * their defaults from here and never restate a literal; the README's configuration table
 * documents these values.
 *
 * Not here: internal constants nobody sets (poll intervals, protocol timeouts of Cairn's own
 * helpers, the backoffs of lock waits and pointer updates); those stay beside their code.
 *
 * This module imports nothing, so every layer may import it.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Where the embedded default lives: paths relative to the config file (or the working folder). */
export const LOCATION_DEFAULTS = {
  /** `store.url` when a config names no store. */
  storeUrl: 'file://./.cairn/store',
  /** `log` when a config names none: the embedded log in this folder. */
  logDir: './.cairn/log',
  /** `stateDir`: local LevelDB folders, one per partition. */
  stateDir: './.cairn/state',
} as const;

/**
 * `store.*` (and each of `stores.*`): what every backend takes from StoreConfig. No location
 * here: `...STORE_DEFAULTS` completes a StoreConfig whose url/root are given.
 */
export const STORE_DEFAULTS = {
  /** uploadFile sends one PutObject below this size, multipart at or above. */
  multipartThresholdBytes: 64 * MiB,
  /** Multipart upload part size (raised when a file would need more than 10,000 parts). */
  partSizeBytes: 16 * MiB,
  /** Time allowed to open a TCP (and TLS) connection to the store. */
  connectTimeoutMs: 10_000,
  /** A request whose response has not started (or whose socket stays silent) this long fails. */
  requestTimeoutMs: 30_000,
  /** Attempts per store request, the first included. */
  maxAttempts: 4,
} as const;

/** Names of the single-store shorthand and of the class a partition has when no rule names one. */
export const PLACEMENT_DEFAULTS = {
  /** The store name of `store` (the shorthand for `stores: { default: store }`). */
  storeName: 'default',
  /** `defaultClass`, and the class that exists unless `storageClasses` defines it. */
  className: 'STANDARD',
} as const;

/** Expert tuning of the S3 backend (S3ObjectStoreOptions; not in the config file). */
export const S3_DEFAULTS = {
  /** The region requests are signed for when neither the option nor AWS_REGION/AWS_DEFAULT_REGION says. */
  region: 'us-east-1',
  /** downloadFile fetches objects in parallel ranged GETs of this size. */
  downloadPartSizeBytes: 16 * MiB,
  /** copy uses one CopyObject up to this size (S3's limit), UploadPartCopy above. */
  maxSingleCopyBytes: 5 * GiB,
  /** UploadPartCopy part size. */
  copyPartSizeBytes: 512 * MiB,
  /** Parallel part requests (uploads, downloads, copies) across one store. */
  concurrency: 32,
  /** Memory that upload parts may hold at once. */
  uploadBufferBytes: 512 * MiB,
  /** Bulk downloads over the direct GET path (off when a client of one's own is given). */
  directDownloads: true,
  /** Memory the direct download path's write segments may hold at once. */
  downloadBufferBytes: 128 * MiB,
  /** HTTP sockets per client. */
  maxSockets: 64,
} as const;

/** The filesystem store (FsObjectStoreOptions). */
export const FS_STORE_DEFAULTS = {
  /** How long a write waits for a key lock before failing retryably. */
  lockTimeoutMs: 60_000,
} as const;

/**
 * Retries of store requests: the backoff between attempts is not configurable (the attempt
 * count, `store.maxAttempts`, is the knob), exponential with full jitter (core/backoff.ts).
 */
export const RETRY_DEFAULTS = {
  attempts: STORE_DEFAULTS.maxAttempts,
  /** The cap of the first retry's delay; each further retry doubles it. */
  baseDelayMs: 200,
  /** No delay between attempts exceeds this. */
  maxDelayMs: 5_000,
} as const;

/** `log.*` whatever the log type. */
export const LOG_DEFAULTS = {
  /** How long a batch run (--stop-at-end, --until-lsn) or a CLI command waits out an unreachable log. */
  unavailableTimeoutMs: 60_000,
} as const;

/** The Kafka log: `log.clientId` and `log.compression`, and KafkaLogOptions' tuning. */
export const KAFKA_DEFAULTS = {
  /** Kafka client id, and the prefix of every name Cairn creates on the broker. */
  clientId: 'cairn',
  /** What Cairn's own appends are compressed with (reads handle every codec). */
  compression: 'none',
  // Measured on the throughput benchmark: 2-8 MiB are alike; smaller fetches add round
  // trips the consumer waits for, larger ones delay the first records and hold more heap.
  /** Per fetch, per partition. */
  maxBytesPerPartition: 4 * MiB,
  /** How long the broker holds a fetch open waiting for new records (the long poll). */
  maxWaitTimeInMs: 500,
  /** Decoded records a reader holds ahead of its caller before its consumer waits. */
  readAheadBytes: 16 * MiB,
  /** Appends above this size are split into several batches in one transaction; the broker's default message.max.bytes is 1 MiB, stay clear of it. */
  maxBatchBytes: 768 * KiB,
  /** A reader whose consumer has not heard from the broker this long reports LOG_UNAVAILABLE and reconnects. */
  stallMs: 6_000,
  /** Retries inside kafkajs before an operation fails. */
  retries: 5,
  /** A TCP connect to a broker that takes longer fails (kafkajs connectionTimeout). */
  connectionTimeoutMs: 3_000,
  /**
   * kafkajs's default is 30 s; it is also what the connect handshake (ApiVersions) waits, so
   * a broker that accepts TCP and never answers would cost 30 s per attempt. Fetches are not
   * affected: kafkajs gives them maxWaitTimeInMs plus a margin when that is longer.
   */
  requestTimeoutMs: 10_000,
  /** The bound on each call into kafkajs, its retries included. */
  operationTimeoutMs: 15_000,
} as const;

/** `snapshots.*`. */
export const SNAPSHOT_DEFAULTS = {
  /** 0 = never by record count (only on request, on exit, or by `cairn checkpoint`). */
  everyRecords: 100_000,
  retain: 3,
  concurrency: 16,
  /** How long a snapshot evicted from retained[] stays readable (restores that started on it finish). */
  evictionGraceMs: 300_000,
  sharing: 'copy',
  retire: 'delete',
} as const;

/** `runtime.*`. */
export const RUNTIME_DEFAULTS = {
  batchSize: 1000,
  onBadRecord: 'stop',
} as const;

/** `fleet.*`: worker groups (`cairn run --group`). */
export const FLEET_DEFAULTS = {
  sessionTimeoutMs: 30_000,
  checkpointOnRevoke: true,
  commitIntervalMs: 5_000,
  handoffTimeoutMs: 30_000,
} as const;

/** `coordinator.*`, and where `cairn coordinator` listens without --host/--port or coordinator.url. */
export const COORDINATOR_DEFAULTS = {
  reportIntervalMs: 5_000,
  policy: 'snapshot',
  trimIntervalMs: 60_000,
  trimDelayMs: 0,
  replicaTtlMs: 60_000,
  host: '127.0.0.1',
  port: 7070,
} as const;

/** Defaults of CLI flags that are not config fields. */
export const CLI_DEFAULTS = {
  /** `cairn demo --dir`. */
  demoDir: '.cairn/demo',
  /** `cairn demo --records`. */
  demoRecords: 20_000,
  /** `cairn lifecycle --expire-days`. */
  lifecycleExpireDays: 7,
  /** `cairn fork diff --samples`, and DiffOptions.samples in the library. */
  diffSamples: 10,
} as const;
