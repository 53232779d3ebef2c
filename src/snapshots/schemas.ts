import { z } from 'zod';
import { CairnError } from '../core/errors.js';
import { firstIssue } from '../core/validation.js';
import { PARTITION_NAME, SNAPSHOT_ID } from '../core/names.js';
import { isSnapshotFileName } from './layout.js';

const partition = z.string().regex(PARTITION_NAME);
const snapshotId = z.string().regex(SNAPSHOT_ID);
const lsn = z.number().int().min(0);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const isoTime = z.iso.datetime();

export const snapshotFileSchema = z.object({
  name: z.string().refine(isSnapshotFileName, 'not a LevelDB snapshot file name'),
  size: z.number().int().min(0),
  sha256,
  /** The object key holding the bytes: this snapshot's folder, or an ancestor's for a fork. */
  key: z.string().min(1),
  /**
   * The store's ETag of `key` as written. A later checkpoint duplicates the object only on
   * a store that confirms the ETag is unchanged (see StoreCapabilities.copyVerifies), so a
   * damaged object is never copied forward. Absent in snapshots written before it existed.
   */
  etag: z.string().min(1).optional(),
});

export const metadataSchema = z.object({
  format: z.literal(1),
  partition,
  snapshotId,
  lsn,
  createdAt: isoTime,
  node: z.string().min(1),
  source: z.string().min(1),
  parent: z.object({ partition, snapshotId, lsn }).optional(),
  /**
   * Set on every snapshot of a fork: the log partition it replays (the root of its lineage),
   * when the fork was made, and for a point-in-time fork the LSN its first open catches up to.
   */
  fork: z.object({ log: partition, createdAt: isoTime, targetLsn: lsn.optional() }).optional(),
  storageClass: z.string().min(1),
  /**
   * A fork's first snapshot lists no files of its own: it inherits the file list of this
   * snapshot (readMetadata resolves it), so creating a fork writes the same few bytes at any
   * state size.
   */
  inherits: z.object({ path: z.string().min(1) }).optional(),
  files: z.array(snapshotFileSchema),
  stats: z.object({
    uploadedBytes: z.number().int().min(0),
    copiedBytes: z.number().int().min(0),
    referencedBytes: z.number().int().min(0),
    syncPauseMs: z.number().min(0),
    durationMs: z.number().min(0),
  }),
}).refine((m) => m.files.length > 0 || m.inherits !== undefined, { message: 'a snapshot lists files or inherits them', path: ['files'] });

export const retainedEntrySchema = z.object({ snapshotId, lsn, path: z.string().min(1), createdAt: isoTime });

export const latestSchema = z.object({
  format: z.literal(1),
  partition,
  snapshotId,
  lsn,
  path: z.string().min(1),
  createdAt: isoTime,
  retained: z.array(retainedEntrySchema).min(1),
  /**
   * Snapshots that left retained[] but whose folders are kept until `evictedAt` + the
   * eviction grace, so a restore that was pointed at one can still finish. Absent in
   * pointers written before it existed (and when nothing is pending).
   */
  evicted: z.array(retainedEntrySchema.extend({ evictedAt: isoTime })).optional(),
});

/** `{parent}/pins/{fork}.json`: the parent snapshots a fork's files still reference. */
export const pinSchema = z.object({ format: z.literal(1), fork: partition, snapshots: z.array(z.string().min(1)).min(1), createdAt: isoTime });

export type Pin = z.infer<typeof pinSchema>;
export type SnapshotFile = z.infer<typeof snapshotFileSchema>;
export type SnapshotMetadata = z.infer<typeof metadataSchema>;
export type RetainedEntry = z.infer<typeof retainedEntrySchema>;
export type EvictedEntry = RetainedEntry & { evictedAt: string };
export type LatestPointer = z.infer<typeof latestSchema>;

/** Parses a stored JSON document; anything unreadable is CORRUPT naming the key. */
export function parseDocument<T>(schema: z.ZodType<T>, body: Buffer | string, key: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString());
  } catch (err) {
    throw new CairnError('CORRUPT', `${key} is not valid JSON`, { cause: err, details: { key } });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = firstIssue(parsed.error);
    throw new CairnError('CORRUPT', `${key}: invalid field ${issue.path}: ${issue.message}`, { details: { key } });
  }
  return parsed.data;
}

export function toRetainedEntry(m: { snapshotId: string; lsn: number; createdAt: string }, path: string): RetainedEntry {
  return { snapshotId: m.snapshotId, lsn: m.lsn, path, createdAt: m.createdAt };
}
