/**
 * `cairn-state/log`: the log abstraction and its backends. `KafkaLog` here loads kafkajs;
 * `createLog` (also in the root export) loads it only when a Kafka log is first used.
 */
export type { AppendRecord, GroupMembership, GroupOptions, GroupView, Log, LogCapabilities, LogInfo, LogRecord, ReadOptions, RecordHeader } from './types.js';
export { createLog, type CreateLogOptions } from './create.js';
export { EmbeddedLog, type EmbeddedLogOptions } from './embedded.js';
export { KafkaLog, type KafkaLogOptions } from './kafka.js';
export { LazyLog } from './lazy.js';
