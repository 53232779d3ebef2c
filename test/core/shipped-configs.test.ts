import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.js';
import { REPO_ROOT } from '../helpers/cli.js';

/** The ready configs users copy from config/ must pass the same validation as theirs. */
describe('configs shipped in config/', () => {
  const files = readdirSync(join(REPO_ROOT, 'config')).filter((f) => f.endsWith('.json'));

  it('include the embedded default, MinIO, MinIO + Kafka, and two MinIO regions', () => {
    expect(files.sort()).toEqual(['embedded.json', 'minio-kafka.json', 'minio.json', 'two-regions.json']);
  });

  it.each(files)('%s validates, with paths resolved against config/', (file) => {
    const config = loadConfig({ file: join(REPO_ROOT, 'config', file) });
    expect(config.stateDir).toBe(join(REPO_ROOT, '.cairn/state'));
    if (config.log.type === 'kafka') expect(config.log).toMatchObject({ brokers: ['127.0.0.1:9092'], topic: 'events', clientId: 'cairn' });
  });
});
