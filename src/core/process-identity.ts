import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who holds something (a lock file, a temporary folder), precisely enough to tell later
 * whether that holder is still running. A pid alone is not enough: pids are reused (a
 * container restarted on the same volume gets pid 1 again), so Linux holders also record
 * their start time and the kernel's boot id. A holder that is alive is never treated as
 * gone, however long it has been paused (SIGSTOP, a debugger, a frozen VM): that is what
 * keeps a lock's check and write atomic without a lease.
 */
export interface ProcessIdentity {
  host: string;
  pid: number;
  /** Clock ticks since boot at which the process started (/proc/PID/stat field 22). */
  start?: string;
  /** /proc/sys/kernel/random/boot_id: a pid from another boot is certainly gone. */
  boot?: string;
}

export type Liveness = 'alive' | 'dead' | 'unknown';

const HOST = hostname();
const BOOT = readOptional('/proc/sys/kernel/random/boot_id')?.trim();
let self: ProcessIdentity | undefined;

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The start time of `pid` as the kernel reports it; undefined off Linux or when gone. */
export function processStartTime(pid: number): string | undefined {
  const stat = readOptional(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19]; // field 22; fields[0] is field 3
}

export function currentProcess(): ProcessIdentity {
  self ??= { host: HOST, pid: process.pid, ...optional('start', processStartTime(process.pid)), ...optional('boot', BOOT) };
  return self;
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the holder described by `who` still runs. Only a holder on this host can be
 * judged; another host's is 'unknown', and callers must treat 'unknown' as alive.
 */
export function liveness(who: Partial<ProcessIdentity>): Liveness {
  if (typeof who.host !== 'string' || typeof who.pid !== 'number') return 'unknown';
  if (who.host !== HOST) return 'unknown';
  if (who.boot !== undefined && BOOT !== undefined && who.boot !== BOOT) return 'dead';
  if (!pidAlive(who.pid)) return 'dead';
  if (who.start !== undefined) {
    const now = processStartTime(who.pid);
    // The pid runs, but a different process than the one that recorded it.
    if (now !== undefined && now !== who.start) return 'dead';
  }
  return 'alive';
}
