import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: integration files start child processes and servers; keep contention bounded.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
