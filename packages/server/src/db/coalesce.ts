/**
 * Calls that come while a batch is being run go together into the next one: one statement (one
 * round trip on PostgreSQL) for many callers, and no wait when nothing is in flight.
 */
export class Coalescer<T, R> {
  readonly #queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  #running = false;

  /**
   * `run`: the results of a batch, in its order. `max`: items per batch at most (a statement's
   * parameters stay bounded).
   */
  constructor(
    private readonly runBatch: (items: readonly T[]) => Promise<readonly R[]>,
    private readonly max = 500,
  ) {}

  run(item: T): Promise<R> {
    const result = new Promise<R>((resolve, reject) => this.#queue.push({ item, resolve, reject }));
    if (!this.#running) void this.#drain();
    return result;
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.max);
        try {
          const results = await this.runBatch(batch.map((b) => b.item));
          batch.forEach((b, i) => b.resolve(results[i] as R));
        } catch (e) {
          for (const b of batch) b.reject(e);
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
