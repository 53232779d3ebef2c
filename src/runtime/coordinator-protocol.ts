import { z } from 'zod';
import { NODE_NAME } from '../core/names.js';

/**
 * The wire contract between processors and the coordinator (README, "The
 * coordinator"). It lives with the runtime, the lower layer, so the coordinator imports it and the
 * processor never imports the coordinator. Every number is checked here: LSNs are safe
 * non-negative integers (-1 meaning "none yet"), names match what a key may hold.
 */
/** An LSN, or -1 for "nothing yet" (no record applied, no snapshot taken). */
const lsnOrNone = z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER);
const lsn = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const commandId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

/** What a processor did with a command of an earlier reply, carried by its next report. */
export const commandOutcomeSchema = z
  .object({
    id: commandId,
    status: z.enum(['done', 'declined', 'failed']),
    reason: z.string().max(500).optional(),
    /** For a snapshot: the LSN of the snapshot taken. */
    lsn: lsnOrNone.optional(),
  })
  .strict();

export const reportSchema = z
  .object({
    node: z.string().regex(NODE_NAME, 'expected 1-128 characters of [A-Za-z0-9._:-]'),
    appliedLsn: lsnOrNone,
    snapshotLsn: lsnOrNone,
    /**
     * The log's bounds as the processor sees them. Only used for logs the coordinator
     * cannot open itself while a processor holds them (the embedded log is single-process).
     */
    log: z.object({ start: lsn, end: lsn }).strict().refine((l) => l.start <= l.end, 'start must not exceed end').optional(),
    outcomes: z.array(commandOutcomeSchema).max(32).optional(),
  })
  .strict();

export const commandSchema = z.discriminatedUnion('type', [
  /** Take a snapshot at or after `minLsn`; a processor behind it declines. */
  z.object({ id: commandId, type: z.literal('snapshot'), minLsn: lsn }).strict(),
  /**
   * Trim the log before `beforeLsn`: sent only to the processor that holds a single-process
   * log, which the coordinator cannot open while it runs. The coordinator decided it.
   */
  z.object({ id: commandId, type: z.literal('trim'), beforeLsn: lsn }).strict(),
]);

/** `POST …/trim`: without a body, a real trim. */
export const trimRequestSchema = z.object({ dryRun: z.boolean().default(false) }).strict();
/** `POST …/snapshot-requests`. */
export const snapshotRequestSchema = z.object({ minLsn: lsn }).strict();

export const reportReplySchema = z.object({ commands: z.array(commandSchema) }).strict();

export type Report = z.infer<typeof reportSchema>;
export type CommandOutcome = z.infer<typeof commandOutcomeSchema>;
export type Command = z.infer<typeof commandSchema>;
export type ReportReply = z.infer<typeof reportReplySchema>;
