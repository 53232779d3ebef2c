import { pathToFileURL } from 'node:url';
import type { StoreCapabilities } from '../types.js';

export interface FsObjectStoreOptions {
  /** Absolute (or cwd-relative) root folder; created on first write. */
  root: string;
  /** How long a write waits for a key lock before failing retryably. Default FS_STORE_DEFAULTS.lockTimeoutMs (core/defaults.ts). */
  lockTimeoutMs?: number;
}

/** What the filesystem store can do (the same record whatever the root). */
export const FS_CAPABILITIES: StoreCapabilities = {
  name: 'fs',
  serverSideCopy: true,
  conditionalWrite: true,
  rangedRead: true,
  maxSingleCopyBytes: Number.MAX_SAFE_INTEGER,
  // A local copy reads the bytes anyway (or reflinks them), so it can afford to hash them.
  copyVerifies: 'sha256',
  storageClasses: false,
  tagging: false,
};

export function fsUrl(root: string): string {
  return pathToFileURL(root).href;
}
