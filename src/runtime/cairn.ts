import { join } from 'node:path';
import { compileConfig, isCairnConfig, type CairnConfig, type CoordinatorConfig, type RawConfig } from '../core/config.js';
import { badInput } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { validatePartition } from '../core/names.js';
import { createLog } from '../log/create.js';
import type { Log } from '../log/types.js';
import { Placement, type PlacedCheckpointResult } from '../snapshots/placement.js';
import { SnapshotRepository } from '../snapshots/repository.js';
import { PartitionState } from '../state/partition-state.js';
import { createStore } from '../store/index.js';
import type { ObjectStore } from '../store/types.js';
import type { CoordinatorLink } from './coordinator-reporter.js';
import { Fleet } from './fleet.js';
import { ForkOperations } from './forks.js';
import { createRuntimeMetrics, type RuntimeMetrics } from './metrics.js';
import { PartitionProcessor, type PartitionProcessorOptions } from './partition-processor.js';
import type { Processor } from './processor-module.js';

export interface CairnOptions {
  /**
   * For raw options (a RawConfig, as in a config file): relative paths resolve against this.
   * Default: the working folder. Ignored for a compiled CairnConfig (its paths are absolute).
   */
  baseDir?: string;
  /** For raw options: what error messages call the configuration. Default 'options'. */
  source?: string;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  /** Use this store instead of building the home store from config (tests, custom wrappers). */
  store?: ObjectStore;
  /** Use these instead of building the named stores from config (the home store: `store`). */
  stores?: Record<string, ObjectStore>;
  /** Use this log instead of building one from config. */
  log?: Log;
}

export type ProcessorOverrides = Partial<Pick<PartitionProcessorOptions, 'stateDir' | 'everyRecords' | 'unavailableTimeoutMs' | 'batchSize' | 'onBadRecord' | 'node' | 'onBootstrapProgress' | 'coordinator' | 'logPartition' | 'ownership'>>;

/** Kafka accepts almost any group id; Cairn's are kept to what is safe in logs, metrics and URLs. */
const GROUP_NAME = /^[A-Za-z0-9._-]{1,200}$/;

function coordinatorLink(c: CoordinatorConfig): CoordinatorLink {
  return { url: c.url, intervalMs: c.reportIntervalMs, ...(c.token ? { token: c.token } : {}) };
}

/**
 * The library entry point: a validated configuration plus the store, log and snapshot
 * repository it describes. Store and log are created on first use, so a command that fails
 * validation never creates a folder or opens a connection.
 *
 * It takes the configuration either raw, as a config file holds it (`new Cairn({ store: {
 * url: 's3://bucket' }, snapshots: { evictionGraceMs: '10m' } })`), compiled once here —
 * validated, defaults applied, durations in milliseconds, relative paths against
 * `options.baseDir` — or already compiled (loadConfig, normaliseConfig), used as it is.
 * A bad raw option throws INVALID_CONFIG naming the field, from the constructor.
 */
export class Cairn {
  private storeInstance: ObjectStore | undefined;
  private logInstance: Log | undefined;
  private repositoryInstance: SnapshotRepository | undefined;
  private readonly otherStores = new Map<string, { store: ObjectStore; repository: SnapshotRepository }>();
  private placementInstance: Placement | undefined;
  private forkOperations: ForkOperations | undefined;
  /** The compiled configuration: what every part of this instance reads. */
  readonly config: CairnConfig;
  readonly logger: Logger;
  readonly metrics: RuntimeMetrics;

  constructor(
    config: CairnConfig | RawConfig,
    private readonly options: CairnOptions = {},
  ) {
    this.config = isCairnConfig(config)
      ? config
      : compileConfig(config, { ...(options.baseDir !== undefined ? { baseDir: options.baseDir } : {}), ...(options.source !== undefined ? { source: options.source } : {}) });
    this.logger = options.logger ?? silentLogger;
    this.metrics = options.metrics ?? createRuntimeMetrics();
  }

  get store(): ObjectStore {
    this.storeInstance ??= this.options.store ?? this.options.stores?.[this.config.placement.homeStore] ?? createStore(this.config.store, { registry: this.metrics.registry });
    return this.storeInstance;
  }

  get log(): Log {
    this.logInstance ??= this.options.log ?? createLog(this.config.log, { logger: this.logger });
    return this.logInstance;
  }

  /** The home store's snapshots: pointers and metadata as the home region sees them. */
  get snapshots(): SnapshotRepository {
    this.repositoryInstance ??= this.repositoryFor(this.store);
    return this.repositoryInstance;
  }

  /**
   * The snapshots of every store of a partition's storage class: checkpoints go to all of
   * them, bootstraps and restores read the home store first (placement.ts).
   */
  get placement(): Placement {
    this.placementInstance ??= new Placement(this.config.placement, (name) => this.repositoryOf(name), this.logger);
    return this.placementInstance;
  }

  /** The snapshot repository of a named store (the home store's is `snapshots`). */
  repositoryOf(name: string): SnapshotRepository {
    if (name === this.config.placement.homeStore) return this.snapshots;
    const config = this.config.placement.stores[name];
    if (!config) throw badInput(`unknown store ${JSON.stringify(name)} (stores: ${Object.keys(this.config.placement.stores).join(', ')})`);
    let entry = this.otherStores.get(name);
    if (!entry) {
      const store = this.options.stores?.[name] ?? createStore(config, { registry: this.metrics.registry });
      entry = { store, repository: this.repositoryFor(store) };
      this.otherStores.set(name, entry);
    }
    return entry.repository;
  }

  private repositoryFor(store: ObjectStore): SnapshotRepository {
    return new SnapshotRepository(store, {
      retain: this.config.snapshots.retain,
      concurrency: this.config.snapshots.concurrency,
      evictionGraceMs: this.config.snapshots.evictionGraceMs,
      sharing: this.config.snapshots.sharing,
      retire: this.config.snapshots.retire,
      logger: this.logger,
    });
  }

  /** Forks, what-if replays, diffs and pruning. */
  get forks(): ForkOperations {
    this.forkOperations ??= new ForkOperations({
      store: this.store,
      log: this.log,
      snapshots: this.snapshots,
      stateDir: this.config.stateDir,
      node: this.config.node,
      processor: (partition, processor, overrides) => this.processor(partition, processor, overrides),
    });
    return this.forkOperations;
  }

  /** The local state folder of a partition. */
  stateDirOf(partition: string, stateDir = this.config.stateDir): string {
    return join(stateDir, validatePartition(partition));
  }

  processor(partition: string, processor: Processor, overrides: ProcessorOverrides = {}): PartitionProcessor {
    return new PartitionProcessor({
      partition: validatePartition(partition),
      processor,
      log: this.log,
      repository: this.placement,
      stateDir: this.config.stateDir,
      node: this.config.node,
      everyRecords: this.config.snapshots.everyRecords,
      unavailableTimeoutMs: this.config.log.unavailableTimeoutMs,
      batchSize: this.config.runtime.batchSize,
      onBadRecord: this.config.runtime.onBadRecord,
      logger: this.logger,
      metrics: this.metrics,
      ...(this.config.coordinator ? { coordinator: coordinatorLink(this.config.coordinator) } : {}),
      ...overrides,
    });
  }

  /**
   * A worker in group `group` (fleet.ts): Kafka's group protocol decides which partitions of
   * the topic it applies with `processor`; run it with `fleet.run(signal)`.
   */
  fleet(group: string, processor: Processor, overrides: Omit<ProcessorOverrides, 'ownership'> = {}): Fleet {
    if (!GROUP_NAME.test(group)) throw badInput(`invalid group name ${JSON.stringify(group)}: 1-200 of letters, digits, '.', '_' and '-'`);
    return new Fleet({
      group,
      node: this.config.node,
      log: this.log,
      store: this.store,
      runner: (partition, ownership) => this.processor(partition, processor, { ...overrides, ownership }),
      ...this.config.fleet,
      logger: this.logger,
      metrics: this.metrics,
    });
  }

  /** Checkpoints a state folder that no processor has open (e.g. after `cairn run` exited). */
  async checkpointStateDir(partition: string, dir: string, onProgress?: (done: number, total: number) => void): Promise<PlacedCheckpointResult> {
    validatePartition(partition);
    const state = await PartitionState.open(dir, { create: false, partition });
    try {
      const capture = await state.capture(join(dir, '..', '.staging', `${partition}-checkpoint-${process.pid}`));
      try {
        return await this.placement.checkpoint(capture, {
          partition,
          node: this.config.node,
          source: this.log.source(partition),
          ...(onProgress ? { onProgress } : {}),
        });
      } finally {
        // The staged links are ours alone: never leave a .staging folder behind.
        await capture.release();
      }
    } finally {
      await state.close();
    }
  }

  async close(): Promise<void> {
    await this.logInstance?.close();
    await this.storeInstance?.close();
    await Promise.all([...this.otherStores.values()].map((s) => s.store.close()));
  }
}
