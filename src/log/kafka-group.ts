import type { Consumer, Kafka } from 'kafkajs';
import { CairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { kafkaError, kafkaErrorTypes, withDeadline, type KafkaAdmin } from './kafka-client.js';
import type { GroupMembership, GroupOptions, GroupView } from './types.js';

/**
 * Membership of a Kafka consumer group, used for what the group protocol is good at —
 * deciding which worker owns which partition, noticing a dead one within the session
 * timeout, and showing progress (committed offsets, lag) in Kafka's own tools — and for
 * nothing else: the member's consumer is paused on the whole topic, so it never fetches a
 * record. Records come from the partition readers (kafka-reader.ts), positioned by local
 * state; a committed offset is only ever written, never read back as a position.
 *
 * kafkajs speaks the eager protocol (no cooperative rebalancing): every rebalance may move
 * any partition, and a member learns what it lost only when the rebalance completes, at the
 * same moment the new owner learns what it gained. So ownership is checked again where it
 * matters: a commit from a member the broker no longer counts (ILLEGAL_GENERATION,
 * UNKNOWN_MEMBER_ID) is FENCED.
 */
export interface GroupSettings extends GroupOptions {
  kafka: Kafka;
  admin: KafkaAdmin;
  /** The node a member's client id names; undefined for clients that are not Cairn workers. */
  memberOf(clientId: string): string | undefined;
  topic: string;
  /** The Cairn partition name of topic partition N. */
  nameOf(partition: number): string;
  /** Topic partition of a Cairn partition name. */
  numberOf(partition: string): number;
  /** Bound on joining, committing and leaving (kafka-client.ts withDeadline). */
  timeoutMs: number;
  logger: Logger;
}

const FENCED_TYPES = new Set(['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID', 'STALE_MEMBER_EPOCH']);

export async function joinKafkaGroup(s: GroupSettings): Promise<GroupMembership> {
  const consumer = s.kafka.consumer({
    groupId: s.group,
    sessionTimeout: s.sessionTimeoutMs,
    // A member that does not rejoin within this is dropped from the rebalance: kept close to
    // the session timeout, so a stopped worker delays a rebalance no longer than it would be
    // noticed anyway (kafkajs's default is 60 s).
    rebalanceTimeout: Math.max(s.sessionTimeoutMs, 10_000),
    heartbeatInterval: Math.max(500, Math.floor(s.sessionTimeoutMs / 10)),
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 1000,
  });
  const membership = new KafkaGroupMembership(s, consumer);
  await membership.start();
  return membership;
}

class KafkaGroupMembership implements GroupMembership {
  private current = new Set<string>();
  private left = false;

  constructor(
    private readonly s: GroupSettings,
    private readonly consumer: Consumer,
  ) {}

  get assigned(): ReadonlySet<string> {
    return this.current;
  }

  async start(): Promise<void> {
    const { consumer, s } = this;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const next = new Set((payload.memberAssignment[s.topic] ?? []).map((n) => s.nameOf(n)));
      const gained = [...next].filter((p) => !this.current.has(p)).sort();
      const lost = [...this.current].filter((p) => !next.has(p)).sort();
      this.current = next;
      s.logger.info({ group: s.group, memberId: payload.memberId, assigned: [...next].sort(), gained, lost }, 'group rebalanced');
      if (gained.length > 0 || lost.length > 0) s.onAssignment(gained, lost);
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      // kafkajs rejoins by itself (restart: true); the next GROUP_JOIN says what this member owns.
      s.logger.warn({ group: s.group, err: payload.error, restart: payload.restart }, 'group member crashed; rejoining');
    });
    const what = `cannot join group ${s.group} on ${s.topic}`;
    try {
      await withDeadline(consumer.connect(), s.timeoutMs, what);
      await withDeadline(consumer.subscribe({ topic: s.topic, fromBeginning: true }), s.timeoutMs, what);
      // run() creates the group member synchronously; pausing at once means no fetch is ever made.
      void consumer.run({ autoCommit: false, eachBatch: async () => undefined }).catch((err: unknown) => s.logger.error({ group: s.group, err }, 'group member stopped'));
      consumer.pause([{ topic: s.topic }]);
    } catch (err) {
      await consumer.disconnect().catch(() => undefined);
      throw kafkaError(err, what);
    }
  }

  async commit(partition: string, offset: number): Promise<void> {
    const what = `cannot commit offset ${offset} of ${partition} for group ${this.s.group}`;
    if (!this.current.has(partition)) {
      throw new CairnError('FENCED', `${what}: this member no longer owns ${partition}`, { details: { partition, group: this.s.group } });
    }
    try {
      await withDeadline(this.consumer.commitOffsets([{ topic: this.s.topic, partition: this.s.numberOf(partition), offset: String(offset) }]), this.s.timeoutMs, what);
    } catch (err) {
      const type = kafkaErrorTypes(err).find((t) => FENCED_TYPES.has(t));
      if (type) {
        throw new CairnError('FENCED', `${what}: the broker no longer counts this member as its owner (${type})`, { cause: err, details: { partition, group: this.s.group } });
      }
      throw kafkaError(err, what);
    }
  }

  async view(): Promise<GroupView> {
    const { state, members } = await this.s.admin.describeGroup(this.s.group);
    const stable = state === 'Stable';
    const view: GroupView = { stable, members: new Set(), owners: new Map() };
    for (const m of members) {
      const node = this.s.memberOf(m.clientId);
      if (node === undefined) continue;
      view.members.add(node);
      if (stable) for (const n of m.partitions) view.owners.set(this.s.nameOf(n), node);
    }
    return view;
  }

  async leave(): Promise<void> {
    if (this.left) return;
    this.left = true;
    this.current = new Set();
    await withDeadline(this.consumer.disconnect(), this.s.timeoutMs, `leaving group ${this.s.group}`).catch(() => undefined);
  }
}
