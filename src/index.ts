/**
 * `cairn-state`: what a stream worker needs — Cairn, processors, configuration and errors —
 * plus the types its methods return. Loading it loads neither fastify nor kafkajs (Kafka is
 * loaded when a Kafka log is first used); the rest has its own entry point:
 * `cairn-state/store`, `cairn-state/log`, `cairn-state/snapshots`, `cairn-state/coordinator`
 * and `cairn-state/testing`.
 */
export { Cairn, type CairnOptions, type ProcessorOverrides } from './runtime/cairn.js';
export { PartitionProcessor, type PartitionProcessorOptions, type RunOptions, type RunSummary, type SnapshotRequestOutcome } from './runtime/partition-processor.js';
export type { StopReason } from './runtime/run-summary.js';
export type { OpenedState, StartSource } from './runtime/bootstrap.js';
export type { Fleet, FleetOptions, FleetPartitionResult, FleetSummary } from './runtime/fleet.js';
export type { ForkOperations, ReplayOptions, ReplaySummary } from './runtime/forks.js';
export { loadProcessor, type Processor, type ProcessorContext, type ProcessorRecord, type ProcessorState, type ValueCodec } from './runtime/processor-module.js';
export { createRuntimeMetrics, type RuntimeMetrics } from './runtime/metrics.js';
export { compileConfig, loadConfig, normaliseConfig, type CairnConfig, type CompileConfigOptions, type RawConfig, type PlacementConfig, type StorageClassConfig, type StoreConfig, type LogConfig } from './core/config.js';
export { CairnError, ERROR_CODES, isCairnError, type ErrorCode, type ErrorKind } from './core/errors.js';
export { createLogger, type Logger } from './core/logger.js';

// Types returned by the methods above; their implementations are under the subpaths.
export type { ObjectStore, StoreCapabilities } from './store/types.js';
export type { Log, LogRecord, LogInfo, AppendRecord, RecordHeader } from './log/types.js';
export type { SnapshotRepository, SnapshotAccess, CheckpointRequest, RestoreRequest, SnapshotListing, SnapshotList, CheckpointResult, RestoreResult, VerifyReport, GcResult, RebuildResult } from './snapshots/repository.js';
export type { Placement, ClassOverride, PartitionPlacement, PlacedStore, PlacedCheckpointResult, PlacedPointer, PlacedRestoreResult, StoreOutcome } from './snapshots/placement.js';
export type { PointerRead, PointerStatus } from './snapshots/pointer.js';
export type { PruneResult } from './snapshots/prune.js';
export type { SnapshotMetadata, LatestPointer, RetainedEntry } from './snapshots/schemas.js';
export type { PartitionState, EntriesOptions } from './state/partition-state.js';
export type { Capture, CapturedFile, StateEntry } from './state/types.js';
export type { CreateForkResult } from './forks/fork.js';
export type { DropForkResult, ForkListing } from './forks/fork-admin.js';
export type { DiffOptions, DiffResult } from './forks/diff.js';
