/**
 * Named points where a test may kill the process outright (SIGKILL, no cleanup), to prove a
 * multi-step protocol leaves the store consistent wherever it stops. Set
 * `CAIRN_FAILPOINTS=fork-create:pin,…`; unset (always, in production) each check is one
 * string lookup.
 */
export function failpoint(name: string): void {
  const armed = process.env.CAIRN_FAILPOINTS;
  if (!armed) return;
  if (armed.split(',').includes(name)) process.kill(process.pid, 'SIGKILL');
}
