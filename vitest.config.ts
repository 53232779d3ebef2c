import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Two tiers. `unit` (`npm run test:unit`): in-process tests of single pieces on the local
 * filesystem and the embedded log — no MinIO, no Kafka, no browser, no CLI processes — so it
 * runs anywhere in under a minute (the slower end-to-end files without services, crash loops
 * and CLI runs, stay in `integration`). `integration`: everything else, against the real
 * services test/setup/global.ts starts. `npm test` runs both. test/core/tiers.test.ts keeps
 * the unit list honest: none of these files may reach for a service.
 */
export const UNIT_TESTS = [
  'test/core/shipped-configs.test.ts',
  'test/core/placement-config.test.ts',
  'test/core/tiers.test.ts',
  'test/core/module-graph.test.ts',
  'test/core/errors.test.ts',
  'test/core/durations.test.ts',
  'test/log/kafka-errors.test.ts',
  'test/log/kafka-codecs.test.ts',
  'test/log/record-buffer.test.ts',
  'test/log/embedded.test.ts',
  'test/state/partition-state.test.ts',
  'test/state/manifest.test.ts',
  'test/state/table-check.test.ts',
  'test/state/capture.test.ts',
  'test/store/wrappers.test.ts',
  'test/store/capabilities-gating.test.ts',
  'test/store/transfer.test.ts',
  'test/store/custom-store.test.ts',
  'test/store/request-retry.test.ts',
  'test/snapshots/lost-response.test.ts',
  'test/snapshots/ownership.test.ts',
  'test/snapshots/eviction-grace.test.ts',
  'test/snapshots/pointer-rebuild.test.ts',
  'test/snapshots/pointer-update.test.ts',
  'test/snapshots/outage.test.ts',
  'test/snapshots/coverage.test.ts',
  'test/runtime/commit-pipeline.test.ts',
  'test/runtime/record-values.test.ts',
  'test/runtime/trim-gap-needed.test.ts',
  'test/runtime/disk-full.test.ts',
  'test/runtime/local-corruption.test.ts',
  'test/runtime/processor.test.ts',
  'test/coordinator/listing-startup.test.ts',
  'test/coordinator/trim-policy.test.ts',
  'test/coordinator/regions-trim.test.ts',
  'test/coordinator/replica-book.test.ts',
];

export default defineConfig({
  // Tests and examples import the package by its name, as users do (tsconfig.json maps the same names).
  resolve: {
    alias: [
      { find: /^cairn-state$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
      { find: /^cairn-state\/([a-z]+)$/, replacement: fileURLToPath(new URL('./src/$1/index.ts', import.meta.url)) },
    ],
  },
  test: {
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: integration files start child processes and servers; keep contention bounded.
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      // Unit files mock no modules and keep no process-wide state, so one worker's files share
      // one module graph (isolate: false): the tier takes about 37 s here instead of 56.
      { extends: true, test: { name: 'unit', include: UNIT_TESTS, isolate: false } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: UNIT_TESTS, globalSetup: ['test/setup/global.ts'] } },
    ],
  },
});
