/** A token bucket shared by all downloads: `bytesPerSecond` on average, bursts up to one second's worth. */
import { sleep } from '../util/sleep.js';

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `bytesPerSecond` 0 means unlimited. */
  constructor(
    private readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = bytesPerSecond;
    this.last = now();
  }

  /** Resolves once `bytes` may pass; a large take runs the bucket into debt that later takes wait out. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSecond <= 0) return;
    const t = this.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((t - this.last) / 1000) * this.bytesPerSecond);
    this.last = t;
    this.tokens -= bytes;
    if (this.tokens < 0)
      await sleep(
        Math.ceil((-this.tokens / this.bytesPerSecond) * 1000),
        signal ?? new AbortController().signal,
      );
  }
}
