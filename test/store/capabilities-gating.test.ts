import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import { FsObjectStore, type ObjectStore } from '../../src/store/index.js';
import type { CopyOptions } from '../../src/store/types.js';
import { expectCode, makeTempDir, removeDir } from '../helpers/fixtures.js';
import { runStoreConformance } from '../../src/testing/store-conformance.js';

/**
 * The conformance suite gates cases on `store.capabilities`. This runs it against a store
 * that really lacks three of them — a wrapper over the fs store that refuses conditional
 * puts and byte ranges (BAD_INPUT) and copies by downloading and re-uploading — and declares
 * exactly that. The suite can only pass if the gated cases are left out: run ungated, the
 * conditional-write and ranged-read cases fail on the refusals.
 */
function reducedStore(inner: FsObjectStore, scratch: string): ObjectStore {
  let n = 0;
  const refuse = (what: string) => Promise.reject(new CairnError('BAD_INPUT', `this store does not support ${what}`));

  /** Copy through this process: download, check the recorded sha256, upload. */
  const copy = async (from: string, to: string, options?: CopyOptions): Promise<{ etag: string }> => {
    const tmp = join(scratch, `copy-${n++}`);
    try {
      await inner.downloadFile(from, tmp);
      const bytes = await readFile(tmp);
      const expected = options?.expect?.sha256;
      if (expected !== undefined && createHash('sha256').update(bytes).digest('hex') !== expected) {
        throw new CairnError('CORRUPT', `copy ${from}: not the recorded bytes`, { details: { key: from } });
      }
      if (from === to) return { etag: (await inner.head(from)).etag };
      return { etag: (await inner.uploadFile(to, tmp)).etag };
    } finally {
      await rm(tmp, { force: true });
    }
  };

  return {
    capabilities: { ...inner.capabilities, name: 'fs-reduced', serverSideCopy: false, conditionalWrite: false, rangedRead: false, copyVerifies: 'sha256' },
    url: inner.url,
    get: (key, options) => (options?.range ? refuse('byte ranges') : inner.get(key)),
    head: (key) => inner.head(key),
    put: (key, body, options) => (options?.ifMatch !== undefined || options?.ifNoneMatch !== undefined ? refuse('conditional writes') : inner.put(key, body, options)),
    uploadFile: (key, path, options) => inner.uploadFile(key, path, options),
    downloadFile: (key, path, options) => inner.downloadFile(key, path, options),
    copy,
    delete: (keys) => inner.delete(keys),
    tag: (key, tags) => inner.tag(key, tags),
    list: (prefix) => inner.list(prefix),
    listFolders: (prefix) => inner.listFolders(prefix),
    close: () => inner.close(),
  };
}

async function fixture(): Promise<{ store: ObjectStore; root: string; cleanup: () => Promise<void> }> {
  const root = await makeTempDir('reduced');
  const scratch = await makeTempDir('reduced-scratch');
  const store = reducedStore(new FsObjectStore({ root: join(root, 'store') }), scratch);
  return {
    store,
    root,
    cleanup: async () => {
      await removeDir(root);
      await removeDir(scratch);
    },
  };
}

runStoreConformance('fs behind a wrapper without serverSideCopy, conditionalWrite, rangedRead', fixture, ['serverSideCopy', 'conditionalWrite', 'rangedRead']);

describe('the reduced wrapper really lacks what it does not declare', () => {
  it('refuses conditional puts and byte ranges, and copies (verified) without server-side copy', async () => {
    const { store, cleanup } = await fixture();
    try {
      const { etag } = await store.put('k', 'value');
      await expectCode(store.put('k', 'other', { ifMatch: etag }), 'BAD_INPUT');
      await expectCode(store.put('new', 'x', { ifNoneMatch: '*' }), 'BAD_INPUT');
      await expectCode(store.get('k', { range: { start: 0, end: 2 } }), 'BAD_INPUT');
      const sha256 = createHash('sha256').update('value').digest('hex');
      await store.copy('k', 'k2', { expect: { sha256 } });
      expect((await store.get('k2')).body.toString()).toBe('value');
      await expectCode(store.copy('k', 'k3', { expect: { sha256: '0'.repeat(64) } }), 'CORRUPT');
      await expectCode(store.head('k3'), 'NOT_FOUND');
    } finally {
      await cleanup();
    }
  });
});
