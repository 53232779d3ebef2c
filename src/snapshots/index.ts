/**
 * `cairn-state/snapshots`: the snapshot repository of one store, placement over several
 * stores, re-tiering, and the documents they keep (latest.json, metadata.json), for tools
 * that manage snapshots without running a processor.
 */
export { SnapshotRepository, type RepositoryOptions, type CheckpointRequest, type RestoreRequest, type SnapshotAccess, type SnapshotListing, type SnapshotList, type CheckpointResult, type RestoreResult, type VerifyReport, type GcResult, type RebuildResult } from './repository.js';
export { Placement, type ClassOverride, type PartitionPlacement, type PlacedStore, type PlacedCheckpointResult, type PlacedPointer, type PlacedRestoreResult, type StoreOutcome } from './placement.js';
export { alignPartition, type AlignOptions, type AlignReport, type StoreAlignment } from './retier.js';
export { coversLogStart } from './coverage.js';
export type { PointerRead, PointerStatus } from './pointer.js';
export type { PruneResult } from './prune.js';
export type { SnapshotMetadata, LatestPointer, RetainedEntry, Pin } from './schemas.js';
