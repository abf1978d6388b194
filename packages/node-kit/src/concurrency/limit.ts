/**
 * Concurrency limits on p-limit: at most N functions in flight, the others wait their turn in the
 * order they came; with N = 1 that is in-process serialisation (one piece of work after another
 * in one process — where several processes share the state, a database lock is what serialises).
 */
import pLimit from 'p-limit';

/** Runs `fn` under the limit; resolves or rejects as `fn` does (a failure does not stop the queue). */
export type Limit = <T>(fn: () => Promise<T>) => Promise<T>;

/** At most `concurrency` of the functions given in flight at once; the others wait, in order. */
export function concurrencyLimit(concurrency: number): Limit {
  const limit = pLimit(concurrency);
  return (fn) => limit(fn);
}

/** One function at a time, in the order given. */
export function serialQueue(): Limit {
  return concurrencyLimit(1);
}

/** One function at a time per key (keys run independently); an idle key holds nothing. */
export class KeyedSerialQueue {
  /** Per key: its queue and the calls given to it that have not settled yet. */
  readonly #queues = new Map<string, { limit: Limit; calls: number }>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.#queues.get(key);
    if (entry === undefined) {
      entry = { limit: serialQueue(), calls: 0 };
      this.#queues.set(key, entry);
    }
    const held = entry;
    held.calls++;
    return held.limit(fn).finally(() => {
      if (--held.calls === 0 && this.#queues.get(key) === held) this.#queues.delete(key);
    });
  }

  /** Keys with work running or waiting. */
  get size(): number {
    return this.#queues.size;
  }
}
