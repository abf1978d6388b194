/**
 * Bounds how many enrollment nonces may be live at once on this server, since anyone may ask for
 * one and each is a database row until it expires. Past the bound the request is refused with
 * FLT_RATE_LIMITED (agents back off and retry) instead of letting the table grow without limit.
 */
import { FlotillaError } from '@flotilla/protocol';

/** Live enrollment nonces one server process hands out (about 166/s sustained at the 5 min default TTL). */
export const MAX_LIVE_ENROLL_NONCES = 50_000;

export class NonceBudget {
  /** Expiry times (ms) of issued nonces, oldest first (the TTL is constant, so they arrive sorted). */
  private expiries: number[] = [];
  private head = 0;

  constructor(private readonly max = MAX_LIVE_ENROLL_NONCES) {}

  /** Records one nonce expiring at `expiresAtMs`; throws FLT_RATE_LIMITED when the budget is spent. */
  take(nowMs: number, expiresAtMs: number): void {
    while (this.head < this.expiries.length && (this.expiries[this.head] ?? 0) <= nowMs) this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.expiries.length) {
      this.expiries = this.expiries.slice(this.head);
      this.head = 0;
    }
    if (this.expiries.length - this.head >= this.max) {
      const oldest = this.expiries[this.head] ?? nowMs + 60_000;
      throw new FlotillaError('FLT_RATE_LIMITED', 'too many enrollments in progress; retry in a minute', {
        details: {
          limit: 'enroll_nonce_budget',
          liveNonces: this.max,
          retryAfterSeconds: Math.max(1, Math.ceil((oldest - nowMs) / 1000)),
        },
      });
    }
    this.expiries.push(expiresAtMs);
  }
}
