import type { LogConfig } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { EmbeddedLog } from './embedded.js';
import { KafkaLog } from './kafka.js';
import type { Log } from './types.js';

export type { AppendRecord, Log, LogCapabilities, LogInfo, LogRecord, ReadOptions } from './types.js';
export { EmbeddedLog, type EmbeddedLogOptions } from './embedded.js';
export { KafkaLog, type KafkaLogOptions } from './kafka.js';

export interface CreateLogOptions {
  /** Embedded log: fsync each append. */
  sync?: boolean;
  /** Kafka log: where kafkajs's own error lines go (silent when absent). */
  logger?: Logger;
}

/**
 * The log a configuration names. Synchronous: backends connect lazily on first use, so
 * building one never fails for reasons other than the configuration itself.
 */
export function createLog(config: LogConfig, options: CreateLogOptions = {}): Log {
  switch (config.type) {
    case 'embedded':
      return new EmbeddedLog({ dir: config.dir, ...(options.sync !== undefined ? { sync: options.sync } : {}) });
    case 'kafka':
      return new KafkaLog({
        brokers: config.brokers,
        topic: config.topic,
        clientId: config.clientId,
        partitions: config.partitions,
        ...(options.logger ? { logger: options.logger } : {}),
      });
  }
}
