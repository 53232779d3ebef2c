/**
 * `cairn-state/testing`: the behaviour suites every backend is held to, shipped so a custom
 * ObjectStore or Log is checked by the same cases as the built-in ones. They register vitest
 * cases (vitest is an optional peer dependency: install it to use this entry point).
 *
 * ```ts
 * import { runStoreConformance } from 'cairn-state/testing';
 * runStoreConformance('my store', async () => ({ store: new MyStore(), cleanup: async () => {} }));
 * ```
 */
export { runStoreConformance, expectCode, collect, type StoreFixture, type GatedCapability } from './store-conformance.js';
export { runLogConformance, type LogFixture } from './log-conformance.js';
