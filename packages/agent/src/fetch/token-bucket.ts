/** A token bucket shared by all downloads: `bytesPerSecond` on average, bursts up to one second's worth. */
import { sleep } from '../util/sleep.js';

/** The bucket's time: a monotonic clock in ms and a sleep. Tests inject one that records the waits. */
export interface BucketClock {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

const realClock: BucketClock = { now: () => performance.now(), sleep };

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `bytesPerSecond` 0 means unlimited. */
  constructor(
    private readonly bytesPerSecond: number,
    private readonly clock: BucketClock = realClock,
  ) {
    this.tokens = bytesPerSecond;
    this.last = clock.now();
  }

  /** Resolves once `bytes` may pass; a large take runs the bucket into debt that later takes wait out. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSecond <= 0) return;
    const t = this.clock.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((t - this.last) / 1000) * this.bytesPerSecond);
    this.last = t;
    this.tokens -= bytes;
    if (this.tokens < 0)
      await this.clock.sleep(
        Math.ceil((-this.tokens / this.bytesPerSecond) * 1000),
        signal ?? new AbortController().signal,
      );
  }
}
