/**
 * Named points where a test may stop the process in the middle of a multi-step protocol,
 * to prove the protocol holds wherever it stops. `CAIRN_FAILPOINTS=name[=action],…` with
 * action `kill` (default: SIGKILL, no cleanup) or `stop` (SIGSTOP, once per process: the
 * test decides when to SIGCONT — a pause of any length, as a GC pause, a debugger or a
 * frozen VM would make). Unset (always, in production) each check is one string lookup.
 */
const fired = new Set<string>();

export function failpoint(name: string): void {
  const armed = process.env.CAIRN_FAILPOINTS;
  if (!armed) return;
  for (const entry of armed.split(',')) {
    const [point, action = 'kill'] = entry.split('=');
    if (point !== name) continue;
    if (action === 'stop') {
      if (fired.has(name)) return;
      fired.add(name);
      process.kill(process.pid, 'SIGSTOP');
      return;
    }
    process.kill(process.pid, 'SIGKILL');
  }
}
