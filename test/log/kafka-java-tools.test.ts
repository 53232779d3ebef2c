import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type KafkaMessage, type SASLOptions } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { consumerGroups, javaProduce, kafkaEnv, type JavaRecord } from '../helpers/kafka-java.js';
import { createTestTopic, kafkaBrokers, type TestTopic } from '../helpers/kafka.js';

/**
 * The test services' extras proven against the real broker: Kafka's own Java tools as clients
 * (test/helpers/kafka-java.ts) and the SASL_SSL listener test/services/kafka.sh sets up.
 */

// Null vs empty for keys and values, a tombstone, a repeated header key, an empty header value,
// and the console reader's default separators (tab , :) inside the data.
const RECORDS: JavaRecord[] = [
  { key: null, value: 'null key', headers: [['trace', 't1'], ['trace', 't2']] },
  { key: '', value: 'empty key', headers: [['a', 'x'], ['b', '']] },
  { key: 'tombstone', value: null },
  { key: 'empty value', value: '' },
  { key: 'k5', value: 'ünïcode\twith, commas: and = signs' },
];

const topics: TestTopic[] = [];
afterAll(async () => {
  await Promise.all(topics.map((t) => t.drop()));
});

async function freshTopic(label: string, partitions = 1): Promise<TestTopic> {
  const topic = await createTestTopic(label, partitions);
  topics.push(topic);
  return topic;
}

/** A message as strings, keeping null apart from empty. */
function plain(message: KafkaMessage): JavaRecord {
  const headers: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) headers.push([name, v === undefined ? '<undefined>' : v.toString()]);
  }
  return {
    key: message.key === null ? null : message.key.toString(),
    value: message.value === null ? null : message.value.toString(),
    ...(headers.length > 0 ? { headers } : {}),
  };
}

describe('Kafka Java tools (test/helpers/kafka-java.ts)', () => {
  it('ConsoleProducer writes null and empty keys and values, tombstones and headers exactly (gzip)', async () => {
    const t = await freshTopic('java-produce-gzip');
    const brokers = kafkaBrokers().join(',');
    await javaProduce({ brokers, topic: t.topic, partition: 0, records: RECORDS, compression: 'gzip' });

    const groupId = `cairn-java-tools-${randomBytes(4).toString('hex')}`;
    const consumer = t.kafka.consumer({ groupId });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: t.topic, fromBeginning: true });
      const got: KafkaMessage[] = [];
      await consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message);
        },
      });
      for (let i = 0; i < 600 && got.length < RECORDS.length; i++) await sleep(100);

      expect(got.map((m) => m.offset)).toEqual(['0', '1', '2', '3', '4']);
      expect(got.map(plain)).toEqual(RECORDS);
      // Null and empty stay apart on the wire, not only after toString.
      expect(got[0]!.key).toBeNull();
      expect(got[1]!.key).toEqual(Buffer.alloc(0));
      expect(got[2]!.value).toBeNull();
      expect(got[3]!.value).toEqual(Buffer.alloc(0));

      // The group is live while the consumer runs: ConsumerGroupCommand must list it.
      expect(await consumerGroups(brokers)).toContain(groupId);
    } finally {
      await consumer.disconnect();
    }
  });

  it('ConsoleProducer writes zstd batches the broker accepts', async () => {
    // kafkajs cannot decompress zstd (yet), so only the broker's offsets are checked here.
    const t = await freshTopic('java-produce-zstd');
    await javaProduce({ brokers: kafkaBrokers().join(','), topic: t.topic, records: RECORDS, compression: 'zstd' });
    expect(await t.admin.fetchTopicOffsets(t.topic)).toMatchObject([{ partition: 0, low: '0', high: '5' }]);
  });

  it('refuses a partition it cannot target', async () => {
    const t = await freshTopic('java-produce-two', 2);
    await expect(javaProduce({ brokers: kafkaBrokers().join(','), topic: t.topic, partition: 1, records: RECORDS })).rejects.toThrow(
      /cannot target partition 1/,
    );
  });
});

describe('SASL_SSL listener (test/services/kafka.sh)', () => {
  function saslKafka(sasl: SASLOptions): Kafka {
    return new Kafka({
      clientId: 'cairn-sasl-test',
      brokers: kafkaEnv('KAFKA_SASL_SSL_BROKERS').split(','),
      // Only the test CA: the broker's certificate must verify for 127.0.0.1 by the book.
      ssl: { ca: [readFileSync(kafkaEnv('KAFKA_CA_FILE'))] },
      sasl,
      retry: { retries: 0 },
      connectionTimeout: 3000,
      logLevel: logLevel.NOTHING,
    });
  }

  it.each(['scram-sha-512', 'scram-sha-256', 'plain'] as const)('accepts the test user with %s', async (mechanism) => {
    expect(kafkaEnv('KAFKA_SASL_MECHANISM')).toBe('scram-sha-512');
    const username = kafkaEnv('KAFKA_SASL_USERNAME');
    const password = kafkaEnv('KAFKA_SASL_PASSWORD');
    const admin = saslKafka({ mechanism, username, password } as SASLOptions).admin();
    await admin.connect();
    try {
      expect(Array.isArray(await admin.listTopics())).toBe(true);
    } finally {
      await admin.disconnect();
    }
  });

  it('rejects a wrong password with an authentication error', async () => {
    const username = kafkaEnv('KAFKA_SASL_USERNAME');
    const admin = saslKafka({ mechanism: 'scram-sha-512', username, password: `${kafkaEnv('KAFKA_SASL_PASSWORD')}-wrong` }).admin();
    try {
      const err = await admin.connect().then(
        () => undefined,
        (e: unknown) => e as Error & { cause?: Error },
      );
      expect(err).toBeDefined();
      expect([err!.name, err!.cause?.name]).toContain('KafkaJSSASLAuthenticationError');
    } finally {
      await admin.disconnect();
    }
  });
});
