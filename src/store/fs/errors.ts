import { CairnError } from '../../core/errors.js';

export function notFound(key: string): CairnError {
  return new CairnError('NOT_FOUND', `object ${key} does not exist`, { details: { key } });
}

const TRANSIENT = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'ETIMEDOUT', 'EINTR']);

export function mapFsError(err: unknown, op: string, key: string, write = false): CairnError {
  if (err instanceof CairnError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const message = `${op} ${key}: ${(err as Error).message}`;
  if (!write && (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR')) {
    return new CairnError('NOT_FOUND', `object ${key} does not exist`, { cause: err, details: { key } });
  }
  if (code === 'ENOSPC') return new CairnError('DISK_FULL', message, { cause: err, details: { key, errno: code } });
  if (TRANSIENT.has(code)) return new CairnError('STORE_UNAVAILABLE', message, { cause: err, details: { key, errno: code } });
  return new CairnError('STORE_FAILED', message, { cause: err, details: { key, errno: code } });
}

/** `write`: a missing path means a broken store folder, not a missing object. */
export async function fsOp<T>(op: string, key: string, fn: () => Promise<T>, write = false): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapFsError(err, op, key, write);
  }
}
