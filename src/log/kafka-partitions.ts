import { badInput } from '../core/errors.js';
import { validatePartition } from '../core/names.js';

const MAX_KAFKA_PARTITION = 2 ** 31 - 1;

/**
 * How Cairn partition names map to partitions of one topic: `pN` is partition N unless the
 * configuration maps the name (log.partitions); nothing else is guessed. Free of kafkajs, so
 * a log can name its partitions (Log.source) before the client library is loaded.
 */
export class KafkaPartitionNames {
  constructor(
    readonly topic: string,
    private readonly mapped: Record<string, number> = {},
  ) {}

  /** The Cairn name of topic partition N: its name under log.partitions, else `pN`. */
  nameOf(n: number): string {
    for (const [name, mapped] of Object.entries(this.mapped)) if (mapped === n) return name;
    return `p${n}`;
  }

  numberOf(partition: string): number {
    const name = validatePartition(partition);
    const mapped = Object.hasOwn(this.mapped, name) ? this.mapped[name] : undefined;
    if (mapped !== undefined) return mapped;
    const m = /^p(0|[1-9][0-9]{0,9})$/.exec(name);
    const n = m ? Number(m[1]) : NaN;
    if (!(n <= MAX_KAFKA_PARTITION)) {
      throw badInput(`partition ${JSON.stringify(name)} does not name a partition of topic ${this.topic}: use p<N> for partition N, or map the name under log.partitions`, {
        partition: name,
      });
    }
    return n;
  }

  /** What snapshots record as the partition's source. */
  sourceOf(partition: string): string {
    return `kafka:${this.topic}/${this.numberOf(partition)}`;
  }
}

/** What a KafkaLog can do, known before it is loaded. */
export const KAFKA_LOG_CAPABILITIES = { name: 'kafka', multiProcess: true, groups: true } as const;
