/**
 * Named points where a test may stop the process in the middle of a multi-step protocol,
 * to prove the protocol holds wherever it stops. Production code only marks the points
 * (`failpoint(name)`); nothing below an entry point reads the environment. A process is armed
 * by its entry point — the CLI arms itself from `CAIRN_FAILPOINTS` (cli/main.ts), a test child
 * calls `armFailpoints` — and an unarmed registry (always, in production) costs one size check.
 *
 * Spec: `name[=action],…` with action `kill` (default: SIGKILL, no cleanup) or `stop`
 * (SIGSTOP, once per process: the test decides when to SIGCONT — a pause of any length, as a
 * GC pause, a debugger or a frozen VM would make).
 */
export type FailpointAction = 'kill' | 'stop';

const armed = new Map<string, FailpointAction>();
const fired = new Set<string>();

/** Arms the points a spec names (replacing what was armed); '' or undefined disarms all. */
export function armFailpoints(spec: string | undefined): void {
  armed.clear();
  fired.clear();
  for (const entry of (spec ?? '').split(',')) {
    const [point, action = 'kill'] = entry.split('=');
    if (!point) continue;
    if (action !== 'kill' && action !== 'stop') throw new Error(`failpoint ${point}: unknown action ${JSON.stringify(action)} (kill or stop)`);
    armed.set(point, action);
  }
}

export function failpoint(name: string): void {
  if (armed.size === 0) return;
  const action = armed.get(name);
  if (action === undefined) return;
  if (action === 'stop') {
    if (fired.has(name)) return;
    fired.add(name);
    process.kill(process.pid, 'SIGSTOP');
    return;
  }
  process.kill(process.pid, 'SIGKILL');
}
