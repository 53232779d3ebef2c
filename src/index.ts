/** The public library API of Cairn. */
export { Cairn, type CairnOptions, type ProcessorOverrides } from './runtime/cairn.js';
export { PartitionProcessor, type PartitionProcessorOptions, type RunOptions, type RunSummary } from './runtime/partition-processor.js';
export { loadProcessor, type Processor, type ProcessorState } from './runtime/processor-module.js';
export { createRuntimeMetrics, type RuntimeMetrics } from './runtime/metrics.js';
export { loadConfig, normaliseConfig, type CairnConfig, type RawConfig } from './core/config.js';
export { CairnError, ERROR_CODES, isCairnError, type ErrorCode } from './core/errors.js';
export { createLogger } from './core/logger.js';
export { SnapshotRepository } from './snapshots/repository.js';
export type { SnapshotMetadata, LatestPointer } from './snapshots/schemas.js';
export { PartitionState } from './state/partition-state.js';
export { createStore } from './store/index.js';
export type { ObjectStore, StoreCapabilities } from './store/types.js';
export { createLog } from './log/index.js';
export type { Log, LogRecord, LogInfo, AppendRecord } from './log/types.js';
