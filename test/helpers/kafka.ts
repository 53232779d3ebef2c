import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { inject } from 'vitest';

/**
 * What Kafka integration tests need to reach the broker started by test/setup/global.ts.
 * Throws (never skips) when Kafka is not available, so a missing broker shows up as a
 * failure with its reason.
 */
export function kafkaBrokers(): string[] {
  const status = inject('kafka');
  const brokers = (status?.ok ? status.env.KAFKA_BROKERS : undefined) ?? process.env.KAFKA_BROKERS;
  if (!brokers) {
    throw new Error(`Kafka not available: ${status?.reason ?? process.env.CAIRN_KAFKA_ERROR ?? 'KAFKA_BROKERS not set by the global setup'}`);
  }
  return brokers.split(',').map((b) => b.trim()).filter(Boolean);
}

/** A raw kafkajs client for test set-up and for producing what Cairn would not. */
export function rawKafka(brokers: string[] = kafkaBrokers(), clientId = 'cairn-test'): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING });
}

export interface TestTopic {
  topic: string;
  admin: Admin;
  kafka: Kafka;
  /** Moves a partition's log start to `offset`, as an operator or another process would. */
  deleteRecords(partition: number, offset: number): Promise<void>;
  /** Deletes the topic and disconnects the admin client; safe to call twice. */
  drop(): Promise<void>;
}

/**
 * A fresh topic no other test (or earlier run) uses. Retention is off, as Cairn expects of
 * its topics: only deleteRecords moves the log start.
 */
export async function createTestTopic(label: string, partitions = 2, brokers: string[] = kafkaBrokers()): Promise<TestTopic> {
  const kafka = rawKafka(brokers);
  const admin = kafka.admin();
  await admin.connect();
  const topic = `cairn-${label.replace(/[^a-z0-9-]+/gi, '-').slice(0, 40)}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic,
        numPartitions: partitions,
        replicationFactor: 1,
        configEntries: [
          { name: 'retention.ms', value: '-1' },
          { name: 'retention.bytes', value: '-1' },
        ],
      },
    ],
  });
  let dropped = false;
  return {
    topic,
    admin,
    kafka,
    deleteRecords: async (partition, offset) => {
      // kafkajs looks the leader up in metadata it only loads for offsets: load it first.
      await admin.fetchTopicOffsets(topic);
      await admin.deleteTopicRecords({ topic, partitions: [{ partition, offset: String(offset) }] });
    },
    drop: async () => {
      if (dropped) return;
      dropped = true;
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    },
  };
}
