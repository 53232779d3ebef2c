import {
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  type LifecycleRule,
  type PutBucketLifecycleConfigurationCommandInput,
  type S3Client,
  type TransitionStorageClass,
} from '@aws-sdk/client-s3';
import type { StoreConfig } from '../../core/config.js';
import { CairnError } from '../../core/errors.js';
import { retryRequest, STORE_BACKOFF } from '../request-retry.js';
import { buildClient } from './client.js';
import { mapS3Error } from './errors.js';
import { s3OptionsFromConfig } from './options.js';

/**
 * Bucket lifecycle rules for snapshot objects retired by tag (`snapshots.retire: "tag"`,
 * sweep.ts). Bucket-level calls stay out of the ObjectStore interface: they act on the whole
 * bucket, not on keys under the store's prefix, and only an operator command makes them.
 *
 * This module loads the AWS SDK; the CLI imports it only when a command needs it.
 */

/** Rules whose ID starts with this are Cairn's: `apply` replaces them and keeps every other rule. */
export const CAIRN_RULE_PREFIX = 'cairn-';
export const EXPIRE_RULE_ID = 'cairn-expire-retired';
export const TRANSITION_RULE_ID = 'cairn-transition-old';

/** The sweeper's tag (sweep.ts RETIRED_TAG); repeated here so this file needs nothing of snapshots/. */
const RETIRED = { Key: 'cairn-retired', Value: 'true' } as const;

export interface LifecyclePlan {
  /** Retired objects expire this many days after they were created (S3 counts from creation, not from the tag). */
  expireDays: number;
  /** Every object under the prefix moves to this class this many days after it was created. */
  transition?: { days: number; storageClass: string };
}

/** The rules for one store, as PutBucketLifecycleConfiguration takes them. */
export function lifecycleRules(prefix: string, plan: LifecyclePlan): LifecycleRule[] {
  const Prefix = prefix ? `${prefix}/` : '';
  const rules: LifecycleRule[] = [
    {
      ID: EXPIRE_RULE_ID,
      Status: 'Enabled',
      // Filters AND their conditions: prefix and tag. Nothing untagged ever matches, so
      // latest.json and every retained snapshot are out of reach of this rule by construction.
      Filter: Prefix ? { And: { Prefix, Tags: [{ ...RETIRED }] } } : { Tag: { ...RETIRED } },
      Expiration: { Days: plan.expireDays },
    },
  ];
  if (plan.transition) {
    rules.push({
      ID: TRANSITION_RULE_ID,
      Status: 'Enabled',
      Filter: { Prefix },
      Transitions: [{ Days: plan.transition.days, StorageClass: plan.transition.storageClass as TransitionStorageClass }],
    });
  }
  return rules;
}

/** The prefix a rule's filter names ('' for none), in whichever of S3's shapes it is written. */
function rulePrefix(rule: LifecycleRule): string {
  return rule.Filter?.And?.Prefix ?? rule.Filter?.Prefix ?? rule.Prefix ?? '';
}

export interface ApplyResult {
  /** IDs of the rules already in the bucket that were left as they were (not Cairn's). */
  kept: string[];
  /** IDs of Cairn's rules that were replaced. */
  replaced: string[];
}

/**
 * Puts `rules` into the bucket's lifecycle configuration: reads what is there, keeps every
 * rule Cairn did not create (ID not starting with `cairn-`), replaces Cairn's, writes the
 * whole. A Cairn rule for another prefix of the same bucket is another deployment's: it is
 * CONFLICT and nothing is written, since the IDs would collide and replacing it would stop
 * that deployment's expiry. S3 has no conditional write for lifecycle configurations, so two
 * applies to one bucket at the same moment may lose one another's rules: run one at a time.
 */
export async function applyLifecycle(config: StoreConfig, rules: LifecycleRule[]): Promise<ApplyResult> {
  if (config.kind !== 's3' || !config.bucket) throw new CairnError('BAD_INPUT', `store ${config.url} is not an S3 bucket; it has no lifecycle`);
  const bucket = config.bucket;
  const prefix = config.prefix ?? '';
  const client = buildClient(s3OptionsFromConfig(config));
  // The client never retries (maxAttempts 1): the store's retry loop and attempts apply here too.
  const policy = { attempts: config.maxAttempts, ...STORE_BACKOFF };
  const call = <T>(op: string, fn: () => Promise<T>): Promise<T> => retryRequest(policy, {}, { op, key: bucket }, fn, (err) => mapS3Error(err, { op, key: bucket }));
  try {
    const current = await call('getBucketLifecycle', () => readLifecycle(client, bucket));
    const existing = current?.Rules ?? [];
    const ours = existing.filter((r) => r.ID?.startsWith(CAIRN_RULE_PREFIX));
    const foreign = ours.find((r) => rulePrefix(r) !== (prefix ? `${prefix}/` : ''));
    if (foreign) {
      throw new CairnError(
        'CONFLICT',
        `bucket ${bucket} has Cairn lifecycle rule ${foreign.ID} for prefix ${JSON.stringify(rulePrefix(foreign))}, not this store's ${JSON.stringify(prefix ? `${prefix}/` : '')}; not replaced, nothing written`,
        { details: { bucket, rule: foreign.ID, prefix: rulePrefix(foreign) } },
      );
    }
    const kept = existing.filter((r) => !r.ID?.startsWith(CAIRN_RULE_PREFIX));
    const input: PutBucketLifecycleConfigurationCommandInput = {
      Bucket: bucket,
      LifecycleConfiguration: { Rules: [...kept, ...rules] },
      ...(current?.TransitionDefaultMinimumObjectSize ? { TransitionDefaultMinimumObjectSize: current.TransitionDefaultMinimumObjectSize } : {}),
    };
    await call('putBucketLifecycle', () => client.send(new PutBucketLifecycleConfigurationCommand(input)));
    return { kept: kept.map((r) => r.ID ?? '(no ID)'), replaced: ours.map((r) => r.ID!) };
  } finally {
    client.destroy();
  }
}

/** The bucket's lifecycle configuration; undefined when it has none (NoSuchLifecycleConfiguration). */
async function readLifecycle(client: S3Client, bucket: string) {
  try {
    return await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
  } catch (err) {
    const e = err as { name?: string; Code?: string };
    if (e.name === 'NoSuchLifecycleConfiguration' || e.Code === 'NoSuchLifecycleConfiguration') return undefined;
    throw err;
  }
}
