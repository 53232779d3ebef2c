import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_DEFAULTS } from '../../src/core/defaults.js';
import { createStore, type MeteredObjectStore } from '../../src/store/index.js';
import { expectCode, makeTempDir, removeDir } from '../helpers/fixtures.js';
import { s3StoreConfig, s3TestConfig, uniqueS3Prefix } from '../helpers/s3.js';
import { startS3FaultProxy, type S3FaultProxy, type S3Operation, type Verdict } from './s3-fault-proxy.js';

/**
 * Exactly one layer retries each S3 request, through a proxy in front of the real MinIO that
 * answers some requests itself. The store is built as Cairn builds it (createStore, default
 * attempts and backoff). Before this, the SDK (3 attempts), a per-part retry (3) and the
 * store wrapper (4) multiplied: a 2-part upload against 503s made 4 CreateMultipartUpload and
 * 65 UploadPart requests over 21 s, and its final error still claimed to be retryable.
 */
const MiB = 1024 * 1024;
const PREFIX = uniqueS3Prefix(import.meta.url);

let proxy: S3FaultProxy;
let decide: (op: S3Operation, req: IncomingMessage) => Verdict = () => 'forward';
let scratch: string;
const stores: MeteredObjectStore[] = [];

function storeBehindProxy(sub: string, registry?: Registry): MeteredObjectStore {
  const config = s3StoreConfig(`${PREFIX}/${sub}`, { endpoint: proxy.endpoint, multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB });
  const store = createStore(config, registry ? { registry } : {});
  stores.push(store);
  return store;
}

beforeAll(async () => {
  proxy = await startS3FaultProxy(s3TestConfig().endpoint, (op, req) => decide(op, req));
  scratch = await makeTempDir('s3-retries');
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await proxy?.close();
  await removeDir(scratch);
});

describe('S3 requests are retried by one layer only', () => {
  it('a store answering 503 to every UploadPart: each part tries maxAttempts times, the upload fails for good', async () => {
    const registry = new Registry();
    const store = storeBehindProxy('slow-down', registry);
    // Any request for a part is throttled; everything else reaches MinIO.
    decide = (_op, req) => (req.url?.includes('partNumber=') ? 'slow-down' : 'forward');
    await store.put('probe', 'the proxy forwards the rest');
    proxy.reset();

    const file = join(scratch, 'two-parts');
    await writeFile(file, randomBytes(10 * MiB));
    const parts = 2;
    const attempts = STORE_DEFAULTS.maxAttempts;
    const started = performance.now();
    const err = await store.uploadFile('two-parts', file).then(() => undefined, (e: unknown) => e);
    const seconds = (performance.now() - started) / 1000;
    const { counts } = proxy;
    console.info(`503 on UploadPart: ${JSON.stringify(counts)}, total ${proxy.total()}, ${seconds.toFixed(1)} s`);

    // Final: the one retry layer used its attempts, nothing above may retry again.
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: false, details: { attempts } });
    expect(counts.CreateMultipartUpload).toBe(1);
    // The first part to use up its attempts fails the upload and stops the other.
    expect(counts.UploadPart).toBeGreaterThanOrEqual(attempts);
    expect(counts.UploadPart).toBeLessThanOrEqual(parts * attempts);
    // + CreateMultipartUpload and the AbortMultipartUpload that cleans up.
    expect(proxy.total()).toBeLessThanOrEqual(parts * attempts + 2);
    expect(counts.AbortMultipartUpload ?? 0).toBeLessThanOrEqual(1);

    // The metrics show the retries, per request: one part alone retried attempts - 1 times.
    const retries = store.snapshot().retries.uploadFile ?? 0;
    expect(retries).toBeGreaterThanOrEqual(attempts - 1);
    expect(retries).toBeLessThanOrEqual(counts.UploadPart!);
    expect(store.snapshot().requests.uploadFile).toEqual({ STORE_UNAVAILABLE: 1 });
    const text = await registry.metrics();
    expect(text).toContain(`cairn_store_retries_total{backend="s3",op="uploadFile"} ${retries}`);
    // CreateMultipartUpload took one attempt; the exhausted part took all of them.
    expect(text).toMatch(/cairn_store_request_attempts_bucket\{le="1",backend="s3",op="uploadFile"\} [1-9]/);
    expect(text).toMatch(new RegExp(`cairn_store_request_attempts_bucket\\{le="${attempts}",backend="s3",op="uploadFile"\\} [2-9]`));

    decide = () => 'forward';
    await expectCode(store.head('two-parts'), 'NOT_FOUND');
    // Once the store answers again, the same upload goes through.
    expect((await store.uploadFile('two-parts', file)).size).toBe(10 * MiB);
  });

  it('a conditional PUT that landed but whose answer was lost is recognised as ours on retry', async () => {
    const store = storeBehindProxy('lost-answer');
    decide = () => 'forward';
    const { etag } = await store.put('latest.json', '{"lsn":1}');

    // The first conditional PUT reaches MinIO and takes effect; the answer never arrives.
    let lost = 0;
    decide = (op, req) => (op === 'PutObject' && req.headers['if-match'] !== undefined && lost++ === 0 ? 'lose-response' : 'forward');
    proxy.reset();
    const res = await store.put('latest.json', '{"lsn":2}', { ifMatch: etag });
    expect(proxy.counts.PutObject).toBe(2);
    expect(res.etag).toBe((await store.head('latest.json')).etag);
    expect((await store.get('latest.json')).body.toString()).toBe('{"lsn":2}');
    expect(store.snapshot().retries.put).toBe(1);

    // A real loss still surfaces: the object holds someone else's bytes.
    await store.put('other.json', 'someone else');
    lost = 0;
    decide = (op, req) => (op === 'PutObject' && req.headers['if-none-match'] !== undefined && lost++ === 0 ? 'lose-response' : 'forward');
    await expectCode(store.put('other.json', 'mine', { ifNoneMatch: '*' }), 'CONDITION_FAILED');
    expect((await store.get('other.json')).body.toString()).toBe('someone else');
    decide = () => 'forward';
  });
});
