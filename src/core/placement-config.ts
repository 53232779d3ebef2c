import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { LOCATION_DEFAULTS, PLACEMENT_DEFAULTS, STORE_DEFAULTS } from './defaults.js';
import { duration } from './durations.js';
import { badInput, CairnError } from './errors.js';

/** The store's defaults (defaults.ts), under the name the backends and tests know. */
export { STORE_DEFAULTS } from './defaults.js';

/**
 * Where snapshots live: named stores (one per region, each an independent bucket) and
 * storage classes, admin-defined names that say which stores hold a partition's snapshots
 * and with which S3 storage class. Users and operators name classes, never mechanisms;
 * redefining a class here and running `cairn retier` is how an upgrade happens.
 *
 * A config with a single `store` is the shorthand for `stores: { default: store }` and one
 * class, STANDARD, that lives in it.
 */
/** S3's storage class names (STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, GLACIER_IR, ...). */
const S3_STORAGE_CLASS = /^[A-Z_]{1,32}$/;

export const storeSchema = z
  .object({
    url: z.string().regex(/^(file|s3):\/\//, 'expected file://PATH or s3://BUCKET[/PREFIX]'),
    endpoint: z.string().url().optional(),
    region: z.string().min(1).optional(),
    forcePathStyle: z.boolean().optional(),
    /** The S3 storage class of STANDARD's objects in a single-store config (storageClasses override it). */
    storageClass: z.string().regex(S3_STORAGE_CLASS).optional(),
    multipartThresholdBytes: z.number().int().min(5 * 1024 * 1024).optional(),
    partSizeBytes: z.number().int().min(5 * 1024 * 1024).optional(),
    /** Time allowed to open a TCP (and TLS) connection to the store. */
    connectTimeoutMs: duration({ min: 100, max: 600_000 }).optional(),
    /** A request whose response has not started (or whose socket stays silent) this long fails. */
    requestTimeoutMs: duration({ min: 100, max: 3_600_000 }).optional(),
    /** Attempts per request, the first included (1 = never retry). The only retry layer for store requests. */
    maxAttempts: z.number().int().min(1).max(20).optional(),
  })
  .strict();

/** A store name: it appears in logs, metrics labels and CLI output. */
export const STORE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** A storage class name, e.g. STANDARD, REDUCED, GEO. */
export const CLASS_NAME = /^[A-Z][A-Z0-9_]{0,31}$/;
/** The store name of the single-store shorthand. */
export const DEFAULT_STORE = PLACEMENT_DEFAULTS.storeName;
/** The class a partition has when no rule names another. */
export const DEFAULT_CLASS = PLACEMENT_DEFAULTS.className;

export const placementSchema = {
  stores: z.record(z.string().regex(STORE_NAME, 'expected a store name of [a-z0-9_-], at most 32'), storeSchema).optional(),
  homeStore: z.string().regex(STORE_NAME).optional(),
  storageClasses: z
    .record(
      z.string().regex(CLASS_NAME, 'expected a class name of [A-Z0-9_], starting with a letter'),
      z.object({ stores: z.array(z.string().min(1)).min(1), s3StorageClass: z.string().regex(S3_STORAGE_CLASS).optional() }).strict(),
    )
    .optional(),
  /** First match wins; `*` matches any run of characters, `?` one. */
  classDefaults: z.array(z.object({ match: z.string().min(1).max(128), class: z.string().min(1) }).strict()).optional(),
  defaultClass: z.string().optional(),
};

export interface StoreConfig {
  kind: 'fs' | 's3';
  url: string;
  /** fs: absolute root folder. */
  root?: string;
  /** s3: bucket and key prefix (no leading or trailing slash; may be empty). */
  bucket?: string;
  prefix?: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  storageClass?: string;
  multipartThresholdBytes: number;
  partSizeBytes: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** Attempts per store request, the first included. */
  maxAttempts: number;
}

export interface StorageClassConfig {
  /** Store names, in the order reads fall back through them after the home store. */
  stores: string[];
  /** The S3 storage class of the snapshot objects; absent: the bucket's default. */
  s3StorageClass?: string;
}

export interface PlacementConfig {
  stores: Record<string, StoreConfig>;
  /** Reads start here; fleet ownership records live here. */
  homeStore: string;
  storageClasses: Record<string, StorageClassConfig>;
  classDefaults: Array<{ match: string; class: string }>;
  defaultClass: string;
}

type RawStore = z.output<typeof storeSchema>;
interface RawPlacement {
  store?: RawStore | undefined;
  stores?: Record<string, RawStore> | undefined;
  homeStore?: string | undefined;
  storageClasses?: Record<string, { stores: string[]; s3StorageClass?: string | undefined }> | undefined;
  classDefaults?: Array<{ match: string; class: string }> | undefined;
  defaultClass?: string | undefined;
}

/** Validates stores, classes and rules together: an unknown name is INVALID_CONFIG naming it. */
export function normalisePlacement(raw: RawPlacement, baseDir: string, source: string): PlacementConfig {
  const invalid = (path: string, why: string) => new CairnError('INVALID_CONFIG', `${source}: invalid field ${path}: ${why}`, { details: { path, source } });
  if (raw.store && raw.stores) throw invalid('stores', 'give either store (one store) or stores (named stores), not both');
  const rawStores = raw.stores ?? { [DEFAULT_STORE]: raw.store ?? { url: LOCATION_DEFAULTS.storeUrl } };
  const names = Object.keys(rawStores);
  if (names.length === 0) throw invalid('stores', 'at least one store is needed');
  const stores = Object.fromEntries(names.map((n) => [n, normaliseStore(rawStores[n]!, baseDir, source, raw.stores ? `stores.${n}` : 'store')]));
  const homeStore = raw.homeStore ?? names[0]!;
  if (!stores[homeStore]) throw invalid('homeStore', `unknown store ${JSON.stringify(homeStore)} (stores: ${names.join(', ')})`);

  const storageClasses: Record<string, StorageClassConfig> = {};
  for (const [name, c] of Object.entries(raw.storageClasses ?? {})) {
    c.stores.forEach((s, i) => {
      if (!stores[s]) throw invalid(`storageClasses.${name}.stores.${i}`, `unknown store ${JSON.stringify(s)} (stores: ${names.join(', ')})`);
    });
    if (new Set(c.stores).size !== c.stores.length) throw invalid(`storageClasses.${name}.stores`, 'a store is named twice');
    storageClasses[name] = { stores: [...c.stores], ...(c.s3StorageClass ? { s3StorageClass: c.s3StorageClass } : {}) };
  }
  // STANDARD exists unless the admin defined it: the home store, with the legacy store-wide class.
  const legacyClass = stores[homeStore]!.storageClass;
  storageClasses[DEFAULT_CLASS] ??= { stores: [homeStore], ...(legacyClass ? { s3StorageClass: legacyClass } : {}) };
  const known = Object.keys(storageClasses).join(', ');
  const defaultClass = raw.defaultClass ?? DEFAULT_CLASS;
  if (!storageClasses[defaultClass]) throw invalid('defaultClass', `unknown storage class ${JSON.stringify(defaultClass)} (classes: ${known})`);
  const classDefaults = (raw.classDefaults ?? []).map((rule, i) => {
    if (!storageClasses[rule.class]) throw invalid(`classDefaults.${i}.class`, `unknown storage class ${JSON.stringify(rule.class)} (classes: ${known})`);
    return { match: rule.match, class: rule.class };
  });
  return { stores, homeStore, storageClasses, classDefaults, defaultClass };
}

export function normaliseStore(raw: RawStore, baseDir: string, source: string, path: string): StoreConfig {
  const store: StoreConfig = {
    kind: raw.url.startsWith('s3://') ? 's3' : 'fs',
    url: raw.url,
    multipartThresholdBytes: raw.multipartThresholdBytes ?? STORE_DEFAULTS.multipartThresholdBytes,
    partSizeBytes: raw.partSizeBytes ?? STORE_DEFAULTS.partSizeBytes,
    connectTimeoutMs: raw.connectTimeoutMs ?? STORE_DEFAULTS.connectTimeoutMs,
    requestTimeoutMs: raw.requestTimeoutMs ?? STORE_DEFAULTS.requestTimeoutMs,
    maxAttempts: raw.maxAttempts ?? STORE_DEFAULTS.maxAttempts,
    ...(raw.endpoint ? { endpoint: raw.endpoint } : {}),
    ...(raw.region ? { region: raw.region } : {}),
    ...(raw.forcePathStyle !== undefined ? { forcePathStyle: raw.forcePathStyle } : {}),
    ...(raw.storageClass ? { storageClass: raw.storageClass } : {}),
  };
  if (store.kind === 'fs') {
    const p = decodeURIComponent(raw.url.slice('file://'.length));
    store.root = isAbsolute(p) ? p : resolve(baseDir, p);
  } else {
    const rest = raw.url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    store.bucket = slash < 0 ? rest : rest.slice(0, slash);
    store.prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(store.bucket)) {
      throw new CairnError('INVALID_CONFIG', `${source}: invalid field ${path}.url: bad bucket name ${JSON.stringify(store.bucket)}`, { details: { path: `${path}.url`, source } });
    }
  }
  return store;
}

/** A class by the name a user gave (a CLI argument): BAD_INPUT naming the classes when there is none. */
export function requireClass(placement: PlacementConfig, name: string): StorageClassConfig {
  const found = placement.storageClasses[name];
  if (!found) throw badInput(`unknown storage class ${JSON.stringify(name)} (classes: ${Object.keys(placement.storageClasses).join(', ')})`);
  return found;
}

/** The class rules give `partition` (an override recorded with `cairn class set` wins over these). */
export function defaultClassOf(placement: PlacementConfig, partition: string): string {
  return placement.classDefaults.find((rule) => globMatches(rule.match, partition))?.class ?? placement.defaultClass;
}

function globMatches(pattern: string, name: string): boolean {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`).test(name);
}
