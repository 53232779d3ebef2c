import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketLifecycleCommand,
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonOf, runCli, tempDir } from '../helpers/cli.js';
import { writeConfig } from '../helpers/runtime-harness.js';
import { s3TestConfig } from '../helpers/s3.js';

/**
 * `cairn lifecycle`: the rules it prints, and --apply against a bucket of this test's own on
 * MinIO (lifecycle configurations are per bucket; the shared test bucket is left alone),
 * read back with a raw client. A rule Cairn did not create survives --apply.
 */

const EXPECTED_FILTER = (prefix: string) => ({ And: { Prefix: `${prefix}/`, Tags: [{ Key: 'cairn-retired', Value: 'true' }] } });

let raw: S3Client;
let bucket: string;
let endpoint: string;
let region: string;
const dirs: string[] = [];
const scratch = (label: string) => {
  const dir = tempDir(label);
  dirs.push(dir);
  return dir;
};

beforeAll(async () => {
  const s3 = s3TestConfig();
  endpoint = s3.endpoint;
  region = s3.region;
  raw = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  bucket = `cairn-lc-${randomBytes(5).toString('hex')}`;
  await raw.send(new CreateBucketCommand({ Bucket: bucket }));
});

afterAll(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  if (!raw) return;
  await raw.send(new DeleteBucketLifecycleCommand({ Bucket: bucket })).catch(() => undefined);
  await raw.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
  raw.destroy();
});

function s3Config(prefix: string): string {
  const dir = scratch('cairn-lifecycle-');
  return writeConfig(dir, { store: { url: `s3://${bucket}/${prefix}`, endpoint, region, forcePathStyle: true }, snapshots: { retire: 'tag' } });
}

async function rulesInBucket() {
  return (await raw.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))).Rules ?? [];
}

describe('cairn lifecycle', () => {
  it('--json prints the expire rule (and the transition rule when asked); nothing is sent without --apply', async () => {
    const config = s3Config('team/a');
    const doc = jsonOf(await runCli(['--config', config, '--json', 'lifecycle']));
    expect(doc.stores).toEqual([
      {
        store: 'default',
        bucket,
        prefix: 'team/a',
        rules: { Rules: [{ ID: 'cairn-expire-retired', Status: 'Enabled', Filter: EXPECTED_FILTER('team/a'), Expiration: { Days: 7 } }] },
        applied: false,
      },
    ]);
    const withTransition = jsonOf(await runCli(['--config', config, '--json', 'lifecycle', '--expire-days', '3', '--transition-days', '30', '--transition-class', 'STANDARD_IA']));
    expect(withTransition.stores[0].rules.Rules).toEqual([
      { ID: 'cairn-expire-retired', Status: 'Enabled', Filter: EXPECTED_FILTER('team/a'), Expiration: { Days: 3 } },
      { ID: 'cairn-transition-old', Status: 'Enabled', Filter: { Prefix: 'team/a/' }, Transitions: [{ Days: 30, StorageClass: 'STANDARD_IA' }] },
    ]);
    await expect(raw.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))).rejects.toMatchObject({ name: 'NoSuchLifecycleConfiguration' });

    const text = await runCli(['--config', config, 'lifecycle', '--help']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/snapshots\.retire/);
  });

  it('--apply puts the rule into the bucket, keeps a rule Cairn did not create, and replaces its own on a second run', async () => {
    await raw.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: bucket,
        LifecycleConfiguration: { Rules: [{ ID: 'keep-me', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } }] },
      }),
    );
    const config = s3Config('team/b');
    const first = jsonOf(await runCli(['--config', config, '--json', 'lifecycle', '--apply']));
    expect(first.stores[0]).toMatchObject({ store: 'default', bucket, applied: true, kept: ['keep-me'] });

    const byId = (rules: Awaited<ReturnType<typeof rulesInBucket>>) => new Map(rules.map((r) => [r.ID, r]));
    let rules = byId(await rulesInBucket());
    expect([...rules.keys()].sort()).toEqual(['cairn-expire-retired', 'keep-me']);
    expect(rules.get('keep-me')).toMatchObject({ Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } });
    expect(rules.get('cairn-expire-retired')).toMatchObject({ Status: 'Enabled', Filter: EXPECTED_FILTER('team/b'), Expiration: { Days: 7 } });

    const second = await runCli(['--config', config, 'lifecycle', '--apply', '--expire-days', '14']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/applied to bucket/);
    rules = byId(await rulesInBucket());
    expect([...rules.keys()].sort()).toEqual(['cairn-expire-retired', 'keep-me']);
    expect(rules.get('cairn-expire-retired')).toMatchObject({ Expiration: { Days: 14 } });

    // Another prefix's Cairn rule is not this store's to replace: refused, nothing written.
    const other = await runCli(['--config', s3Config('team/c'), 'lifecycle', '--apply']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/\[CONFLICT\]/);
    expect(byId(await rulesInBucket()).get('cairn-expire-retired')).toMatchObject({ Filter: EXPECTED_FILTER('team/b'), Expiration: { Days: 14 } });
  });

  it('exit 2 with one line: a config with only a filesystem store, bad flags, an unknown store', async () => {
    const dir = scratch('cairn-lifecycle-fs-');
    const fsConfig = writeConfig(dir, { store: { url: 'file://./store' } });
    const fsOnly = await runCli(['--config', fsConfig, 'lifecycle']);
    expect(fsOnly.code).toBe(2);
    expect(fsOnly.stderr.trim().split('\n')).toHaveLength(1);
    expect(fsOnly.stderr).toMatch(/\[BAD_INPUT\]/);

    const config = s3Config('team/d');
    for (const args of [
      ['--transition-days', '30'],
      ['--expire-days', '0'],
      ['--transition-days', '30', '--transition-class', 'GLACIER'],
      ['--store', 'nope'],
    ]) {
      const r = await runCli(['--config', config, 'lifecycle', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });
});
