import { join } from 'node:path';
import type { CairnConfig, CoordinatorConfig } from '../core/config.js';
import { badInput } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { validatePartition } from '../core/names.js';
import { createLog } from '../log/index.js';
import type { Log } from '../log/types.js';
import { SnapshotRepository, type CheckpointResult } from '../snapshots/repository.js';
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
  logger?: Logger;
  metrics?: RuntimeMetrics;
  /** Use this store instead of building one from config (tests, custom wrappers). */
  store?: ObjectStore;
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
 */
export class Cairn {
  private storeInstance: ObjectStore | undefined;
  private logInstance: Log | undefined;
  private repositoryInstance: SnapshotRepository | undefined;
  private forkOperations: ForkOperations | undefined;
  readonly logger: Logger;
  readonly metrics: RuntimeMetrics;

  constructor(
    readonly config: CairnConfig,
    private readonly options: CairnOptions = {},
  ) {
    this.logger = options.logger ?? silentLogger;
    this.metrics = options.metrics ?? createRuntimeMetrics();
  }

  get store(): ObjectStore {
    this.storeInstance ??= this.options.store ?? createStore(this.config.store, { registry: this.metrics.registry });
    return this.storeInstance;
  }

  get log(): Log {
    this.logInstance ??= this.options.log ?? createLog(this.config.log, { logger: this.logger });
    return this.logInstance;
  }

  get snapshots(): SnapshotRepository {
    this.repositoryInstance ??= new SnapshotRepository(this.store, {
      retain: this.config.snapshots.retain,
      concurrency: this.config.snapshots.concurrency,
      evictionGraceMs: this.config.snapshots.evictionGraceMs,
      sharing: this.config.snapshots.sharing,
      logger: this.logger,
      ...(this.config.store.storageClass ? { storageClass: this.config.store.storageClass } : {}),
    });
    return this.repositoryInstance;
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
      repository: this.snapshots,
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
  async checkpointStateDir(partition: string, dir: string, onProgress?: (done: number, total: number) => void): Promise<CheckpointResult> {
    validatePartition(partition);
    const state = await PartitionState.open(dir, { create: false, partition });
    try {
      const capture = await state.capture(join(dir, '..', '.staging', `${partition}-checkpoint-${process.pid}`));
      try {
        return await this.snapshots.checkpoint(capture, {
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
  }
}
