import { CairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Log } from '../log/types.js';
import { resumeLsn } from '../snapshots/coverage.js';
import { isLocalCorruption } from '../state/integrity.js';
import type { Replacement } from './bootstrap.js';

/** Rebuilds of damaged local state one run may make before it gives up. */
const MAX_REBUILDS = 3;

export interface StateRecoveryOptions {
  partition: string;
  logPartition: string;
  log: Log;
  logger: Logger;
  /** The LSN committed to local state. */
  appliedLsn: () => number;
  /** Waits for the batch in flight to commit; false when that found the state damaged (noted here by absorbDamage). */
  settleCommits: () => Promise<boolean>;
  /** Swaps the processor's state for the latest snapshot (replaceLocalState), or throws TRIM_GAP having changed nothing. */
  replace: (what: Replacement) => Promise<void>;
}

/**
 * The two ways a running processor's local state stops being usable, and what it does about
 * them. Both replace the state with the latest snapshot and replay the log from there, which
 * works only if that snapshot covers the log's start (snapshots/coverage.ts); if none does,
 * the run fails TRIM_GAP and the local state stays as it was, for an operator to look at.
 *
 * - A trim gap: the log was trimmed past the state while running (e.g. by the coordinator,
 *   which does not wait for a replica it has not heard from). The log read says so; the state itself is fine.
 * - Damage: a table failed its block checks, or LevelDB reported corruption (a capture's table
 *   check, a failed read or commit). Nothing of that state may be published or trusted.
 *   Repeated damage is a failing disk, not bad luck: after MAX_REBUILDS the partition stops.
 *
 * Damage is found in many places (applying, committing, a snapshot in the background), but
 * rebuilt in one: at the top of the loop's next turn, when nothing else uses the state.
 */
export class StateRecovery {
  private damage: CairnError | undefined;
  private rebuilds = 0;

  constructor(private readonly o: StateRecoveryOptions) {}

  /**
   * Whether `err` says local state is damaged. If so it is noted, and the state is rebuilt at
   * the loop's next turn, before the next batch; any other error is the caller's to rethrow.
   */
  absorbDamage(err: unknown): boolean {
    if (!isLocalCorruption(err)) return false;
    this.damage = err;
    return true;
  }

  /** At the top of each turn: rebuilds the state if damage was found since the last. */
  async rebuildIfDamaged(): Promise<void> {
    const damage = this.damage;
    if (!damage) return;
    this.damage = undefined;
    const { partition, logger } = this.o;
    if (++this.rebuilds > MAX_REBUILDS) {
      throw new CairnError('CORRUPT', `${partition}: local state was damaged again after ${MAX_REBUILDS} rebuilds (a failing disk?): ${damage.message}`, { cause: damage, details: damage.details ?? {} });
    }
    logger.error({ partition, lsn: this.o.appliedLsn(), err: damage }, 'local state is damaged; rebuilding it from the latest snapshot');
    const info = await this.o.log.info(this.o.logPartition);
    await this.o.replace({ needed: resumeLsn(this.o.appliedLsn()), logStart: info.start, reason: `damaged local state: ${damage.message}`, discardable: true });
  }

  /** The log was trimmed past us while running: re-bootstrap. */
  async recoverFromTrimGap(): Promise<void> {
    if (!(await this.o.settleCommits())) return; // damaged: the loop rebuilds instead
    const info = await this.o.log.info(this.o.logPartition);
    await this.o.replace({ needed: resumeLsn(this.o.appliedLsn()), logStart: info.start, reason: `trim gap: the log starts at ${info.start}`, discardable: false });
  }
}
