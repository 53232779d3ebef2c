import { Kafka, logLevel } from 'kafkajs';

/**
 * What Cairn may leave on a broker (README, "What Cairn creates on the broker"): nothing but
 * the transactional ids of large appends, which the broker expires itself. Every reader's
 * consumer group (`<clientId>-reader-<topic>-<partition>-<12 hex>`) is deleted when the
 * reader closes. Checked once after the whole suite, so every test that read from Kafka is
 * covered, whichever way its processes ended (tests end theirs with SIGTERM, as an operator
 * would; a kill -9 is the documented exception, and the test that kills a worker deletes the
 * groups it left once their member has timed out).
 */
export const READER_GROUP = /^.+-reader-.+-\d+-[0-9a-f]{12}$/;

export async function readerGroupsLeft(brokers: string[]): Promise<string[]> {
  const admin = new Kafka({ clientId: 'cairn-suite-check', brokers, logLevel: logLevel.NOTHING, retry: { retries: 2 } }).admin();
  await admin.connect();
  try {
    const { groups } = await admin.listGroups();
    const readers = groups.map((g) => g.groupId).filter((id) => READER_GROUP.test(id));
    if (readers.length === 0) return [];
    // Left behind = no member any more. A group with a live member belongs to a reader still
    // running (another vitest run on this broker, say), not to one that forgot to clean up.
    const { groups: described } = await admin.describeGroups(readers);
    return described.filter((g) => g.members.length === 0).map((g) => g.groupId);
  } finally {
    await admin.disconnect();
  }
}
