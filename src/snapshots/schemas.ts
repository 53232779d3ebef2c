import { z } from 'zod';
import { CairnError } from '../core/errors.js';
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
  storageClass: z.string().min(1),
  files: z.array(snapshotFileSchema).min(1),
  stats: z.object({
    uploadedBytes: z.number().int().min(0),
    copiedBytes: z.number().int().min(0),
    referencedBytes: z.number().int().min(0),
    syncPauseMs: z.number().min(0),
    durationMs: z.number().min(0),
  }),
});

export const retainedEntrySchema = z.object({ snapshotId, lsn, path: z.string().min(1), createdAt: isoTime });

export const latestSchema = z.object({
  format: z.literal(1),
  partition,
  snapshotId,
  lsn,
  path: z.string().min(1),
  createdAt: isoTime,
  retained: z.array(retainedEntrySchema).min(1),
});

export type SnapshotFile = z.infer<typeof snapshotFileSchema>;
export type SnapshotMetadata = z.infer<typeof metadataSchema>;
export type RetainedEntry = z.infer<typeof retainedEntrySchema>;
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
    const issue = parsed.error.issues[0]!;
    throw new CairnError('CORRUPT', `${key}: invalid field ${issue.path.join('.') || '(root)'}: ${issue.message}`, { details: { key } });
  }
  return parsed.data;
}

export function toRetainedEntry(m: { snapshotId: string; lsn: number; createdAt: string }, path: string): RetainedEntry {
  return { snapshotId: m.snapshotId, lsn: m.lsn, path, createdAt: m.createdAt };
}
