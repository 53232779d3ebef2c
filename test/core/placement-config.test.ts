import { describe, expect, it } from 'vitest';
import { normaliseConfig } from '../../src/core/config.js';
import { isCairnError } from '../../src/core/errors.js';
import { defaultClassOf } from '../../src/core/placement-config.js';

/** Stores, storage classes and class rules: validated once, unknown names refused by name. */
const two = { eu: { url: 'file://./eu' }, us: { url: 'file://./us' } };

function refusal(raw: unknown): { path: unknown; message: string } {
  try {
    normaliseConfig(raw, '/tmp/base', 'test.json');
  } catch (err) {
    if (isCairnError(err, 'INVALID_CONFIG')) return { path: err.details?.path, message: err.message };
    throw err;
  }
  throw new Error('accepted');
}

describe('placement config', () => {
  it('keeps a single store as the shorthand: one store "default", STANDARD in it', () => {
    const c = normaliseConfig({ store: { url: 'file://./s', storageClass: 'STANDARD_IA' } }, '/tmp/base', 'x');
    expect(Object.keys(c.placement.stores)).toEqual(['default']);
    expect(c.placement.homeStore).toBe('default');
    expect(c.store.root).toBe('/tmp/base/s');
    expect(c.placement.storageClasses).toEqual({ STANDARD: { stores: ['default'], s3StorageClass: 'STANDARD_IA' } });
    expect(defaultClassOf(c.placement, 'anything')).toBe('STANDARD');
  });

  it('takes named stores, a home store, classes and rules by pattern, first match winning', () => {
    const c = normaliseConfig(
      {
        stores: two,
        homeStore: 'us',
        storageClasses: { GEO: { stores: ['eu', 'us'], s3StorageClass: 'REDUCED_REDUNDANCY' }, REDUCED: { stores: ['us'] } },
        classDefaults: [
          { match: 'fork-*', class: 'REDUCED' },
          { match: 'orders-?', class: 'GEO' },
          { match: '*', class: 'STANDARD' },
        ],
      },
      '/tmp/base',
      'x',
    );
    expect(c.store).toBe(c.placement.stores.us);
    // STANDARD exists without being defined: the home store.
    expect(c.placement.storageClasses.STANDARD).toEqual({ stores: ['us'] });
    expect(['fork-a', 'orders-1', 'orders-12', 'p0'].map((p) => defaultClassOf(c.placement, p))).toEqual(['REDUCED', 'GEO', 'STANDARD', 'STANDARD']);
  });

  it('refuses unknown stores and classes, naming them and the field', () => {
    expect(refusal({ stores: two, storageClasses: { GEO: { stores: ['eu', 'asia'] } } })).toEqual({ path: 'storageClasses.GEO.stores.1', message: expect.stringContaining('"asia"') });
    expect(refusal({ stores: two, homeStore: 'asia' })).toEqual({ path: 'homeStore', message: expect.stringContaining('"asia"') });
    expect(refusal({ stores: two, classDefaults: [{ match: 'x-*', class: 'GOLD' }] })).toEqual({ path: 'classDefaults.0.class', message: expect.stringContaining('"GOLD"') });
    expect(refusal({ stores: two, defaultClass: 'GOLD' })).toEqual({ path: 'defaultClass', message: expect.stringContaining('"GOLD"') });
    expect(refusal({ store: { url: 'file://./a' }, stores: two }).path).toBe('stores');
    expect(refusal({ stores: two, storageClasses: { GEO: { stores: ['eu', 'eu'] } } }).path).toBe('storageClasses.GEO.stores');
    expect(refusal({ stores: { EU: { url: 'file://./eu' } } }).path).toMatch(/^stores/);
    expect(refusal({ stores: two, storageClasses: { geo: { stores: ['eu'] } } }).path).toMatch(/^storageClasses/);
    expect(refusal({ stores: { eu: { url: 's3://No_Bucket/x' } } }).path).toBe('stores.eu.url');
  });
});
