/**
 * What the rest of Cairn needs from local partition state. Implemented by PartitionState
 * (src/state/partition-state.ts) on classic-level.
 */

/** A user value to write, or DELETE to remove the key. */
export const DELETE: unique symbol = Symbol('cairn.delete');
export type StateWrite = unknown | typeof DELETE;

export interface CapturedFile {
  /** File name inside the LevelDB folder: `000045.ldb`, `MANIFEST-000123`, `CURRENT`. */
  name: string;
  /** Absolute path of the staged copy (hard link or prefix copy). */
  path: string;
  size: number;
}

/** Captured files held for a checkpoint; `await using` (or release()) removes the staging folder. */
export interface Capture extends AsyncDisposable {
  /** Staging folder holding `files`; removed by release(). */
  dir: string;
  /** The applied LSN the captured files contain (-1 when empty). */
  lsn: number;
  /** Every file a restore needs: tables, the MANIFEST prefix, CURRENT. */
  files: CapturedFile[];
  /** How long the synchronous phase took, in milliseconds. */
  syncPauseMs: number;
  /**
   * sha256 of tables by `name:size`, shared by every capture of one open database (LevelDB
   * never reuses a table number while it is open); a new open starts an empty one.
   */
  tableHashes: Map<string, string>;
  /** Deletes the staging folder. */
  release(): Promise<void>;
}

/** A Capture from its parts: disposing it is releasing it. */
export function captureOf(parts: Omit<Capture, typeof Symbol.asyncDispose>): Capture {
  return { ...parts, [Symbol.asyncDispose]: () => parts.release() };
}

export interface StateEntry {
  key: string;
  value: unknown;
}
