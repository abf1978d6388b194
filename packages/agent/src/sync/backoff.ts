/**
 * Exponential backoff with full jitter: the n-th consecutive failure waits a uniformly random time
 * in [0, min(cap, base · 2ⁿ)). Spreading retries over the whole window keeps a fleet that lost its
 * server at the same moment from coming back in lockstep.
 */
import { retryAfterMsOf } from '@flotilla/protocol';

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Uniform in [0, 1); injectable for tests. */
  random?: () => number;
}

export class Backoff {
  private failures = 0;
  capMs: number;
  private readonly baseMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions) {
    this.baseMs = options.baseMs;
    this.capMs = options.capMs;
    this.random = options.random ?? Math.random;
  }

  /** Consecutive failures so far. */
  get attempts(): number {
    return this.failures;
  }

  /** The upper bound of the next delay, before jitter. */
  ceilingMs(): number {
    // 2^failures overflows to Infinity after ~1000 failures; min() keeps it at the cap.
    return Math.min(this.capMs, this.baseMs * 2 ** this.failures);
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  next(): number {
    const ceiling = this.ceilingMs();
    this.failures += 1;
    return Math.floor(this.random() * ceiling);
  }

  /**
   * Like `next()`, but never sooner than the wait the server asked for with `error` (a 429 or 503
   * `Retry-After`), itself bounded by the cap so that a bad header cannot park the agent for good.
   */
  nextAfter(error: unknown): number {
    const jittered = this.next();
    const asked = retryAfterMsOf(error);
    return asked === null ? jittered : Math.max(jittered, Math.min(asked, this.capMs));
  }

  reset(): void {
    this.failures = 0;
  }
}

export const RETRY_BASE_MS = 1000;
export const RETRY_MIN_CAP_MS = 5 * 60_000;

/** The project's retry policy for talking to the server: base 1s, cap max(pollInterval, 5m). */
export function serverBackoff(pollIntervalMs: number, random?: () => number): Backoff {
  return new Backoff({ baseMs: RETRY_BASE_MS, capMs: Math.max(pollIntervalMs, RETRY_MIN_CAP_MS), random });
}
