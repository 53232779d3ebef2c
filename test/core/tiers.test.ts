import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UNIT_TESTS } from '../../vitest.config.js';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * The unit tier (`npm run test:unit`) runs without MinIO, Kafka, a browser or a CLI process.
 * A file in it that reached for one would fail there, or worse, pass only where the services
 * happen to run: so what each listed file imports and calls is checked here.
 */
const FORBIDDEN = [
  /helpers\/(s3|kafka|kafka-java|backends|regions)\.js/,
  /s3-fault-proxy/,
  /\b(runCli|spawnCli)\(/,
  /inject\('(minio|kafka)'\)/,
  /chromium/,
];

describe('test tiers', () => {
  it('every unit-tier file exists and reaches for no service, browser or process', () => {
    expect(new Set(UNIT_TESTS).size).toBe(UNIT_TESTS.length);
    // This file names the patterns it looks for; every other one must not contain them.
    for (const file of UNIT_TESTS.filter((f) => f !== 'test/core/tiers.test.ts')) {
      expect(existsSync(join(REPO_ROOT, file)), file).toBe(true);
      const text = readFileSync(join(REPO_ROOT, file), 'utf8');
      for (const pattern of FORBIDDEN) expect(pattern.test(text), `${file} matches ${pattern}`).toBe(false);
    }
  });
});
