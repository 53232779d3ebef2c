/**
 * `cairn-state/coordinator`: the log-trim coordinator, for a service that embeds it instead of
 * running `cairn coordinator`. Kept out of the root export: it loads fastify.
 */
export { Coordinator, type CoordinatorOptions, type PartitionStatus, type TrimOutcome } from './coordinator.js';
export { createCoordinatorMetrics, type CoordinatorMetrics } from './metrics.js';
export { buildCoordinatorServer, type CoordinatorServerOptions } from './server.js';
export { decideTrim, readArchivedLsn, type TrimPolicy, type TrimDecision } from './trim-policy.js';
export type { Report, Command, CommandOutcome, ReportReply } from '../runtime/coordinator-protocol.js';
