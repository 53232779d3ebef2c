/**
 * Lets readers wait for "something changed" (an append, a fetched batch, room in a buffer)
 * without polling: wait() resolves on the next notify(), after `ms`, or on abort, whichever
 * comes first. Waking everyone is right for these uses: each waiter re-checks its own
 * condition and waits again if it does not hold.
 */
export class Wakeup {
  private readonly waiters = new Set<() => void>();

  notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((done) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(finish);
        signal?.removeEventListener('abort', finish);
        done();
      };
      const timer = setTimeout(finish, ms);
      this.waiters.add(finish);
      signal?.addEventListener('abort', finish, { once: true });
    });
  }
}
