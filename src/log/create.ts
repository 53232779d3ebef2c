import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { KafkaLogConfig, LogConfig } from '../core/config.js';
import { CairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { EmbeddedLog } from './embedded.js';
import { KAFKA_LOG_CAPABILITIES, KafkaPartitionNames } from './kafka-partitions.js';
import type { KafkaLogOptions } from './kafka.js';
import { LazyLog } from './lazy.js';
import type { Log } from './types.js';

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
    case 'kafka': {
      // Certificates are read now, so a bad path fails here; kafkajs loads on first use (LazyLog).
      const kafka: KafkaLogOptions = {
        brokers: config.brokers,
        topic: config.topic,
        clientId: config.clientId,
        partitions: config.partitions,
        compression: config.compression,
        ...(config.ssl ? { ssl: tlsOptions(config.ssl) } : {}),
        ...(config.sasl ? { sasl: config.sasl } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
      };
      const names = new KafkaPartitionNames(config.topic, config.partitions);
      return new LazyLog(KAFKA_LOG_CAPABILITIES, (p) => names.sourceOf(p), async () => new (await import('./kafka.js')).KafkaLog(kafka));
    }
  }
}

/** The TLS options for kafkajs (Node's tls.connect), with the configured files read. */
function tlsOptions(ssl: NonNullable<KafkaLogConfig['ssl']>): ConnectionOptions {
  const read = (path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CairnError('INVALID_CONFIG', `cannot read ${path} (log.ssl): ${(err as Error).message}`, { cause: err, details: { path } });
    }
  };
  const ca = read(ssl.caFile);
  const cert = read(ssl.certFile);
  const key = read(ssl.keyFile);
  return { rejectUnauthorized: ssl.rejectUnauthorized, ...(ca ? { ca: [ca] } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}
