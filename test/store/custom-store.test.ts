import { createHash } from 'node:crypto';
import { AbstractObjectStore, sliceRange, type GetOptions, type GetResult, type ObjectInfo, type PutOptions, type PutResult, type StoreCapabilities } from 'cairn-state/store';
import { runStoreConformance } from 'cairn-state/testing';
import { CairnError } from 'cairn-state';

/**
 * What a user writes to bring their own backend: a store in memory, built on the shipped base
 * class (which validates keys, ranges and options and supplies file transfers, copies and
 * folder listings), held to the same conformance suite as the filesystem and S3 backends.
 */
class MemoryStore extends AbstractObjectStore {
  readonly capabilities: StoreCapabilities = {
    name: 'memory', serverSideCopy: false, conditionalWrite: true, rangedRead: true,
    maxSingleCopyBytes: Number.MAX_SAFE_INTEGER, copyVerifies: 'sha256', storageClasses: false, tagging: false,
  };
  readonly url = 'memory://test';
  private readonly objects = new Map<string, { body: Buffer; etag: string }>();
  private writes = 0;

  protected async _get(key: string, options: GetOptions): Promise<GetResult> {
    const o = this.find(key);
    return { body: sliceRange(o.body, options.range, key), etag: o.etag };
  }

  protected async _head(key: string): Promise<ObjectInfo> {
    const o = this.find(key);
    return { key, size: o.body.length, etag: o.etag };
  }

  protected async _put(key: string, body: Buffer, options: PutOptions): Promise<PutResult> {
    const current = this.objects.get(key);
    if ((options.ifNoneMatch && current) || (options.ifMatch !== undefined && current?.etag !== options.ifMatch)) {
      throw new CairnError('CONDITION_FAILED', `put ${key}: precondition failed`);
    }
    const etag = createHash('md5').update(body).update(String(++this.writes)).digest('hex');
    this.objects.set(key, { body: Buffer.from(body), etag });
    return { etag };
  }

  protected async _delete(keys: string[]): Promise<void> {
    for (const key of keys) this.objects.delete(key);
  }

  protected async *_list(prefix: string): AsyncIterable<ObjectInfo> {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) yield { key, size: this.objects.get(key)!.body.length, etag: this.objects.get(key)!.etag };
  }

  private find(key: string): { body: Buffer; etag: string } {
    const o = this.objects.get(key);
    if (!o) throw new CairnError('NOT_FOUND', `object ${key} does not exist`);
    return o;
  }
}

runStoreConformance('a custom in-memory store', async () => ({ store: new MemoryStore(), cleanup: async () => {}, largeFileBytes: 6 * 1024 * 1024 }), ['serverSideCopy']);
