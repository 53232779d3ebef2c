import { CairnError } from '../core/errors.js';

/**
 * Key rules shared by every backend, so a key that works on the embedded store also works
 * on S3 and the other way round. The '.cairn-' segment prefix is reserved: the filesystem
 * backend keeps its temporary and lock files under such names beside the objects.
 */
export const RESERVED_SEGMENT_PREFIX = '.cairn-';

export function validateKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw badKey(key, 'empty');
  if (key.length > 1024) throw badKey(key, 'longer than 1024 characters');
  if (key.startsWith('/')) throw badKey(key, 'starts with /');
  if (key.includes('\\')) throw badKey(key, 'contains a backslash');
  if (key.includes('\0')) throw badKey(key, 'contains a NUL character');
  for (const segment of key.split('/')) {
    if (segment === '') throw badKey(key, 'has an empty path segment');
    if (segment === '..' || segment === '.') throw badKey(key, `has a ${JSON.stringify(segment)} segment`);
    if (segment.startsWith(RESERVED_SEGMENT_PREFIX)) throw badKey(key, `uses the reserved prefix ${RESERVED_SEGMENT_PREFIX}`);
  }
  return key;
}

/** A listing prefix: '' or a key-like string; it may end in a partial segment or '/'. */
export function validatePrefix(prefix: unknown): string {
  if (prefix === '') return '';
  if (typeof prefix !== 'string') throw badKey(prefix, 'not a string');
  validateKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}

/** listFolders takes a folder: '' or a prefix ending with '/'. */
export function validateFolderPrefix(prefix: unknown): string {
  if (prefix === '') return '';
  if (typeof prefix !== 'string' || !prefix.endsWith('/')) {
    throw new CairnError('BAD_INPUT', `invalid folder prefix ${JSON.stringify(prefix)}: expected '' or a prefix ending with '/'`);
  }
  return validatePrefix(prefix);
}

/** Checks a `{start, end}` byte range (end exclusive) before any request is made. */
export function validateRange(range: { start: number; end: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new CairnError('BAD_INPUT', `invalid byte range ${JSON.stringify(range)}: expected 0 <= start <= end`);
  }
}

/** ETags are compared and returned without the quotes HTTP puts around them. */
export function unquoteEtag(etag: string | undefined): string {
  if (!etag) return '';
  const t = etag.startsWith('W/') ? etag.slice(2) : etag;
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

export function checkPutOptions(options: { ifMatch?: string; ifNoneMatch?: '*' } | undefined): void {
  if (!options) return;
  if (options.ifMatch !== undefined && options.ifNoneMatch !== undefined) {
    throw new CairnError('BAD_INPUT', 'put: ifMatch and ifNoneMatch cannot be combined');
  }
  if (options.ifNoneMatch !== undefined && options.ifNoneMatch !== '*') {
    throw new CairnError('BAD_INPUT', `put: ifNoneMatch must be '*'`);
  }
  if (options.ifMatch !== undefined && unquoteEtag(options.ifMatch) === '') {
    throw new CairnError('BAD_INPUT', 'put: ifMatch must be a non-empty ETag');
  }
}

function badKey(key: unknown, why: string): CairnError {
  return new CairnError('BAD_INPUT', `invalid object key ${JSON.stringify(key)}: ${why}`);
}

export function abortedError(what: string, signal?: AbortSignal): CairnError {
  return new CairnError('ABORTED', `${what}: aborted`, signal?.reason !== undefined ? { cause: signal.reason } : {});
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortedError(what, signal);
}
