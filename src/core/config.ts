import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { COORDINATOR_DEFAULTS, FLEET_DEFAULTS, KAFKA_DEFAULTS, LOCATION_DEFAULTS, LOG_DEFAULTS, RUNTIME_DEFAULTS, SNAPSHOT_DEFAULTS } from './defaults.js';
import { duration } from './durations.js';
import { CairnError } from './errors.js';
import { NODE_NAME, PARTITION_NAME } from './names.js';
import { normalisePlacement, placementSchema, storeSchema, type PlacementConfig, type StoreConfig } from './placement-config.js';
import { firstIssue } from './validation.js';

export type { PlacementConfig, StorageClassConfig, StoreConfig } from './placement-config.js';

/**
 * Configuration is validated once, here, into a normalised object with absolute paths;
 * nothing below the CLI or the library entry point re-reads or re-checks it. Every default
 * comes from defaults.ts; every duration field (`*Ms`) is a `duration()` (durations.ts): a
 * number of milliseconds or a string such as "30s", normalised to milliseconds.
 */

/** What `log.compression` may name (Kafka's own codec names). */
export const KAFKA_COMPRESSIONS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type KafkaCompression = (typeof KAFKA_COMPRESSIONS)[number];

const unavailableTimeoutMs = duration({ max: 86_400_000 }).default(LOG_DEFAULTS.unavailableTimeoutMs);

const logSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('embedded'), dir: z.string().min(1), unavailableTimeoutMs }).strict(),
  z
    .object({
      type: z.literal('kafka'),
      brokers: z.array(z.string().min(1)).min(1),
      topic: z.string().min(1),
      clientId: z.string().min(1).optional(),
      partitions: z.record(z.string().regex(PARTITION_NAME), z.number().int().min(0)).optional(),
      unavailableTimeoutMs,
      /** What Cairn's own appends are compressed with; reading handles every codec regardless. */
      compression: z.enum(KAFKA_COMPRESSIONS).optional(),
      /** TLS to the brokers: `true` trusts the system's CAs; file paths resolve against the config file. */
      ssl: z
        .union([
          z.literal(true),
          z.object({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional(), rejectUnauthorized: z.boolean().optional() }).strict(),
        ])
        .optional(),
      /** The password is read from the environment variable `passwordEnv`, never from the file. */
      sasl: z
        .object({
          mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
          username: z.string().min(1),
          passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected the name of an environment variable'),
        })
        .strict()
        .optional(),
    })
    .strict(),
]);

export const configSchema = z
  .object({
    store: storeSchema.optional(),
    ...placementSchema,
    log: logSchema.prefault({ type: 'embedded', dir: LOCATION_DEFAULTS.logDir }),
    stateDir: z.string().min(1).default(LOCATION_DEFAULTS.stateDir),
    node: z.string().regex(NODE_NAME).optional(),
    // Each object's defaults are stated once, per field; `.prefault({})` runs an absent object
    // through the same fields (a fresh object each time, never a shared constant).
    snapshots: z
      .object({
        /** 0 = never by record count (only on request, on exit, or by `cairn checkpoint`). */
        everyRecords: z.number().int().min(0).default(SNAPSHOT_DEFAULTS.everyRecords),
        retain: z.number().int().min(1).max(1000).default(SNAPSHOT_DEFAULTS.retain),
        concurrency: z.number().int().min(1).max(256).default(SNAPSHOT_DEFAULTS.concurrency),
        /** How long a snapshot evicted from retained[] stays readable (restores that started on it finish). */
        evictionGraceMs: duration({ max: 7 * 24 * 3_600_000 }).default(SNAPSHOT_DEFAULTS.evictionGraceMs),
        /** "copy": every snapshot self-contained; "shared": unchanged tables referenced where stored (checkpoint.ts, sweep.ts). */
        sharing: z.enum(['copy', 'shared']).default(SNAPSHOT_DEFAULTS.sharing),
        /**
         * What happens to objects of evicted snapshots: "delete" them, or "tag" them
         * cairn-retired=true for a bucket lifecycle rule to expire (`cairn lifecycle`; sweep.ts).
         */
        retire: z.enum(['delete', 'tag']).default(SNAPSHOT_DEFAULTS.retire),
      })
      .strict()
      .prefault({}),
    runtime: z
      .object({
        batchSize: z.number().int().min(1).max(100_000).default(RUNTIME_DEFAULTS.batchSize),
        onBadRecord: z.enum(['stop', 'skip']).default(RUNTIME_DEFAULTS.onBadRecord),
      })
      .strict()
      .prefault({}),
    fleet: z
      .object({
        /** A worker silent this long loses its partitions to the others (Kafka session.timeout.ms). */
        sessionTimeoutMs: duration({ min: 6_000, max: 300_000 }).default(FLEET_DEFAULTS.sessionTimeoutMs),
        /** Publish a snapshot of a partition before handing it to its next owner. */
        checkpointOnRevoke: z.boolean().default(FLEET_DEFAULTS.checkpointOnRevoke),
        /** How often applied LSN + 1 is committed as the group's offset. */
        commitIntervalMs: duration({ min: 100, max: 600_000 }).default(FLEET_DEFAULTS.commitIntervalMs),
        /** Longest wait for a live previous owner's last snapshot before taking a partition over anyway. */
        handoffTimeoutMs: duration({ max: 3_600_000 }).default(FLEET_DEFAULTS.handoffTimeoutMs),
      })
      .strict()
      .prefault({}),
    coordinator: z
      .object({
        /** Where processors report; also what `cairn coordinator` listens on unless flags say otherwise. */
        url: z.string().url().regex(/^https?:\/\//, 'expected an http:// or https:// URL'),
        reportIntervalMs: duration({ min: 100, max: 3_600_000 }).default(COORDINATOR_DEFAULTS.reportIntervalMs),
        policy: z.enum(['snapshot', 'replicas']).default(COORDINATOR_DEFAULTS.policy),
        trimIntervalMs: duration({ max: 86_400_000 }).default(COORDINATOR_DEFAULTS.trimIntervalMs),
        trimDelayMs: duration({ max: 30 * 86_400_000 }).default(COORDINATOR_DEFAULTS.trimDelayMs),
        replicaTtlMs: duration({ min: 1_000, max: 86_400_000 }).default(COORDINATOR_DEFAULTS.replicaTtlMs),
      })
      .strict()
      .optional(),
  })
  .strict();

export type RawConfig = z.input<typeof configSchema>;

export type LogConfig = { type: 'embedded'; dir: string; unavailableTimeoutMs: number } | KafkaLogConfig;

export interface KafkaLogConfig {
  type: 'kafka';
  brokers: string[];
  topic: string;
  /** Also the prefix of everything Cairn creates on the broker (reader groups, transactional ids). */
  clientId: string;
  partitions: Record<string, number>;
  unavailableTimeoutMs: number;
  compression: KafkaCompression;
  /** Absent: plaintext. Files are absolute paths, checked to exist when the config was loaded. */
  ssl?: { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized: boolean };
  sasl?: KafkaSasl;
}

/** SASL credentials, the password as read from the environment when the config was loaded. */
export interface KafkaSasl {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

export interface CairnConfig {
  /** Where the configuration came from: a file path, or 'default'. */
  source: string;
  /** The home store (placement.stores[placement.homeStore]): pointers, forks and fleet records. */
  store: StoreConfig;
  /** Named stores and storage classes; a single-store config has one store and STANDARD. */
  placement: PlacementConfig;
  log: LogConfig;
  stateDir: string;
  node: string;
  snapshots: { everyRecords: number; retain: number; concurrency: number; evictionGraceMs: number; sharing: 'copy' | 'shared'; retire: 'delete' | 'tag' };
  runtime: { batchSize: number; onBadRecord: 'stop' | 'skip' };
  fleet: { sessionTimeoutMs: number; checkpointOnRevoke: boolean; commitIntervalMs: number; handoffTimeoutMs: number };
  coordinator?: CoordinatorConfig;
}

export interface CoordinatorConfig {
  url: string;
  /** How often each processor reports (ms). */
  reportIntervalMs: number;
  /** `snapshot`: trim behind the archived LSN; `replicas`: also behind every live replica. */
  policy: 'snapshot' | 'replicas';
  /** How often the coordinator trims by itself (ms); 0 = only on request. */
  trimIntervalMs: number;
  /** A snapshot must be this old (ms) before the automatic loop trims behind it. */
  trimDelayMs: number;
  /** A replica whose last report is older than this (ms) is not live. */
  replicaTtlMs: number;
  /** From $CAIRN_COORDINATOR_TOKEN, never from the file: secrets stay out of configs. */
  token?: string;
}

/** Validates a raw configuration object; relative paths resolve against `baseDir`. */
export function normaliseConfig(raw: unknown, baseDir: string, source: string): CairnConfig {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = firstIssue(parsed.error);
    throw new CairnError('INVALID_CONFIG', `${source}: invalid field ${issue.path}: ${issue.message}`, { details: { path: issue.path, source } });
  }
  const c = parsed.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const placement = normalisePlacement(c, baseDir, source);
  const log: LogConfig =
    c.log.type === 'embedded'
      ? { type: 'embedded', dir: abs(c.log.dir), unavailableTimeoutMs: c.log.unavailableTimeoutMs }
      : kafkaLogConfig(c.log, abs, source);
  return {
    source,
    store: placement.stores[placement.homeStore]!,
    placement,
    log,
    stateDir: abs(c.stateDir),
    node: c.node ?? defaultNodeName(),
    snapshots: c.snapshots,
    runtime: c.runtime,
    fleet: c.fleet,
    ...(c.coordinator ? { coordinator: c.coordinator } : {}),
  };
}

/** How a configuration given as an object (not read from a file) is compiled. */
export interface CompileConfigOptions {
  /** Relative paths (store url, log dir, stateDir, TLS files) resolve against this; default the working folder. */
  baseDir?: string;
  /** Names the configuration in error messages; default 'options'. */
  source?: string;
  /** Where $CAIRN_COORDINATOR_TOKEN is read from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

/**
 * A raw configuration object compiled once, as loadConfig compiles a file: validated (a bad
 * field is INVALID_CONFIG naming it), defaults applied, durations in milliseconds, paths
 * absolute, the coordinator token from the environment.
 */
export function compileConfig(raw: RawConfig, options: CompileConfigOptions = {}): CairnConfig {
  return withToken(normaliseConfig(raw, options.baseDir ?? process.cwd(), options.source ?? 'options'), options.env ?? process.env);
}

/**
 * Whether `config` is already compiled (normaliseConfig's output) rather than raw options. A
 * CairnConfig always carries `source` and `placement`; the raw schema refuses both (it is
 * strict), so no valid raw configuration is mistaken for a compiled one.
 */
export function isCairnConfig(config: CairnConfig | RawConfig): config is CairnConfig {
  const c = config as Partial<CairnConfig> | null | undefined;
  return typeof c === 'object' && c !== null && typeof c.source === 'string' && typeof c.placement === 'object' && c.placement !== null;
}

function defaultNodeName(): string {
  const host = (process.env.HOSTNAME ?? 'node').replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'node';
  return `${host}-${process.pid}`;
}

/**
 * `--config FILE`, else `$CAIRN_CONFIG`, else `./cairn.config.json` if present, else the
 * embedded default rooted at `./.cairn/`.
 */
export function loadConfig(options: { file?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): CairnConfig {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const explicit = options.file ?? env.CAIRN_CONFIG;
  const candidate = explicit ? resolve(cwd, explicit) : resolve(cwd, 'cairn.config.json');
  if (!explicit && !existsSync(candidate)) return withToken(normaliseConfig({}, cwd, 'default'), env);
  let text: string;
  try {
    text = readFileSync(candidate, 'utf8');
  } catch (err) {
    throw new CairnError('INVALID_CONFIG', `cannot read config ${candidate}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CairnError('INVALID_CONFIG', `${candidate}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return withToken(normaliseConfig(raw, dirname(candidate), candidate), env);
}

function withToken(config: CairnConfig, env: NodeJS.ProcessEnv): CairnConfig {
  const token = env.CAIRN_COORDINATOR_TOKEN;
  if (config.coordinator && token) config.coordinator.token = token;
  return config;
}

type RawKafkaLog = Extract<z.output<typeof logSchema>, { type: 'kafka' }>;

function kafkaLogConfig(raw: RawKafkaLog, abs: (p: string) => string, source: string): KafkaLogConfig {
  const invalid = (path: string, why: string) => new CairnError('INVALID_CONFIG', `${source}: invalid field ${path}: ${why}`, { details: { path, source } });
  const file = (field: 'ca' | 'cert' | 'key', p: string | undefined) => {
    if (p === undefined) return {};
    const path = abs(p);
    if (!existsSync(path)) throw invalid(`log.ssl.${field}`, `file ${path} does not exist`);
    return { [`${field}File`]: path };
  };
  const log: KafkaLogConfig = {
    type: 'kafka',
    brokers: raw.brokers,
    topic: raw.topic,
    clientId: raw.clientId ?? KAFKA_DEFAULTS.clientId,
    partitions: raw.partitions ?? {},
    unavailableTimeoutMs: raw.unavailableTimeoutMs,
    compression: raw.compression ?? KAFKA_DEFAULTS.compression,
  };
  if (raw.ssl === true) log.ssl = { rejectUnauthorized: true };
  else if (raw.ssl) log.ssl = { ...file('ca', raw.ssl.ca), ...file('cert', raw.ssl.cert), ...file('key', raw.ssl.key), rejectUnauthorized: raw.ssl.rejectUnauthorized ?? true };
  if (raw.sasl) {
    const password = process.env[raw.sasl.passwordEnv];
    if (password === undefined || password === '') throw invalid('log.sasl.passwordEnv', `environment variable ${raw.sasl.passwordEnv} is not set`);
    log.sasl = { mechanism: raw.sasl.mechanism, username: raw.sasl.username, password };
  }
  return log;
}
