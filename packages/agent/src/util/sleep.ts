/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A sleep that another part of the agent can cut short, e.g. the poller's wait that a
 * `state-changed` push ends at once. A wake while nobody sleeps is remembered for the next sleep.
 */
export class WakeableSleep {
  private wakeCurrent: (() => void) | null = null;
  private pendingWake = false;

  wake(): void {
    if (this.wakeCurrent) this.wakeCurrent();
    else this.pendingWake = true;
  }

  /** Returns true when woken, false when the time ran out or `signal` aborted. */
  sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    if (this.pendingWake) {
      this.pendingWake = false;
      return Promise.resolve(true);
    }
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (woken: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.wakeCurrent = null;
        resolve(woken);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), Math.max(0, ms));
      signal.addEventListener('abort', onAbort, { once: true });
      this.wakeCurrent = () => finish(true);
    });
  }
}
