/**
 * Request rate limits (docs/security.md "Limits in force"), counted with rate-limiter-flexible in
 * this process's memory: with several server replicas each counts on its own, so a client spread
 * over n replicas gets up to n times a limit (a shared Redis store is a later step). Every key is
 * something the client cannot spend on another's behalf: its own address (IPv6: its /64), the pair
 * (user name, its address), or a device id it proved with its token. A refusal is FLT_RATE_LIMITED
 * (429) with `details.retryAfterSeconds`, which the error handler also sends as `Retry-After`.
 */
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { ServerConfig } from '../config.js';
import { addressKey } from './connections.js';

/** The FLT_RATE_LIMITED error for a wait of `msBeforeNext`; `limit` names the limit that refused. */
export function rateLimited(message: string, msBeforeNext: number, limit: string): FlotillaError {
  const retryAfterSeconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return new FlotillaError('FLT_RATE_LIMITED', `${message}; retry in ${retryAfterSeconds} s`, {
    details: { limit, retryAfterSeconds },
  });
}

/** The `Retry-After` seconds an error carries, if it is a rate limit with a known wait. */
export function retryAfterSecondsOf(error: FlotillaError): number | null {
  if (error.code !== 'FLT_RATE_LIMITED') return null;
  const details = error.details as { retryAfterSeconds?: unknown } | undefined;
  const seconds = details?.retryAfterSeconds;
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : null;
}

/** Counts (and now and then logs) one refusal by `limit` of `key`. */
type Refusals = (limit: string, key: string) => void;

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** At most `points` takes per key per fixed window of `windowMs`; 0 points: no limit. */
export class KeyedLimit {
  private readonly limiter: RateLimiterMemory | null;

  constructor(
    readonly name: string,
    points: number,
    windowMs: number,
    private readonly refusals: Refusals,
  ) {
    this.limiter =
      points > 0 ? new RateLimiterMemory({ keyPrefix: name, points, duration: seconds(windowMs) }) : null;
  }

  /**
   * Counts `uses` (default 1) by `key` at once; throws FLT_RATE_LIMITED (`message` says what) when
   * over the limit.
   */
  async take(key: string, message: string, uses = 1): Promise<void> {
    if (this.limiter === null) return;
    try {
      await this.limiter.consume(key, uses);
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      this.refusals(this.name, key);
      throw rateLimited(message, e.msBeforeNext, this.name);
    }
  }
}

export interface LoginLimits {
  loginFailuresBeforeBackoff: number;
  loginMaxBackoffMs: number;
  loginFailuresPerAddress: number;
  loginWindowMs: number;
}

/**
 * Password guessing: failures are counted per (user name, address) — after
 * `loginFailuresBeforeBackoff` of them each further try from that address for that user name waits
 * 1 s, 2 s, 4 s … up to `loginMaxBackoffMs` — and per address over all user names. A locked pair
 * or address is refused before the password is even checked, so guessing on during a lock learns
 * nothing. Nothing is counted per user name alone: an attacker elsewhere cannot lock the owner out.
 */
export class LoginGuard {
  private readonly pairFailures: RateLimiterMemory;
  private readonly pairLock: RateLimiterMemory;
  private readonly addressFailures: RateLimiterMemory | null;
  private readonly windowSec: number;

  constructor(
    private readonly limits: LoginLimits,
    private readonly refusals: Refusals,
  ) {
    this.windowSec = seconds(limits.loginWindowMs);
    this.pairFailures = new RateLimiterMemory({
      keyPrefix: 'login_fail',
      points: Number.MAX_SAFE_INTEGER,
      duration: this.windowSec,
    });
    this.pairLock = new RateLimiterMemory({ keyPrefix: 'login_lock', points: 1, duration: 1 });
    this.addressFailures =
      limits.loginFailuresPerAddress > 0
        ? new RateLimiterMemory({
            keyPrefix: 'login_addr',
            points: limits.loginFailuresPerAddress,
            duration: this.windowSec,
          })
        : null;
  }

  /** Throws FLT_RATE_LIMITED when this pair or this address must wait. */
  async check(username: string, address: string): Promise<void> {
    const lock = await this.pairLock.get(pairKey(username, address));
    if (lock !== null && lock.consumedPoints > 1 && lock.msBeforeNext > 0) {
      this.refusals('login_user_address', address);
      throw rateLimited(
        `too many failed sign-ins as "${username}" from this address`,
        lock.msBeforeNext,
        'login_user_address',
      );
    }
    const perAddress = await this.addressFailures?.get(addressKey(address));
    if (
      perAddress &&
      perAddress.consumedPoints >= this.limits.loginFailuresPerAddress &&
      perAddress.msBeforeNext > 0
    ) {
      this.refusals('login_address', address);
      throw rateLimited(
        'too many failed sign-ins from this address',
        perAddress.msBeforeNext,
        'login_address',
      );
    }
  }

  /** Records a failed sign-in; past the threshold it locks the pair for the next backoff step. */
  async failed(username: string, address: string): Promise<void> {
    const key = pairKey(username, address);
    const res = await this.pairFailures.penalty(key);
    // Failures are forgotten a window after the last one, not the first.
    await this.pairFailures.set(key, res.consumedPoints, this.windowSec);
    const over = res.consumedPoints - this.limits.loginFailuresBeforeBackoff;
    if (over >= 0) {
      const waitMs = Math.min(this.limits.loginMaxBackoffMs, 1000 * 2 ** Math.min(over, 30));
      await this.pairLock.block(key, waitMs / 1000);
    }
    await this.addressFailures?.penalty(addressKey(address));
  }

  /** A successful sign-in clears the pair's failures (not the address's: other names may be guessed). */
  async succeeded(username: string, address: string): Promise<void> {
    const key = pairKey(username, address);
    await this.pairFailures.delete(key);
    await this.pairLock.delete(key);
  }
}

function pairKey(username: string, address: string): string {
  return `${addressKey(address)} ${username}`;
}

/**
 * Bounds the live token challenges of one device: anyone who knows a device id may ask for
 * challenges, so each device keeps only its newest `max`; issuing one more deletes the oldest row.
 * Kept per process (n replicas: at most n·max rows per device). Evicting instead of refusing means
 * a stranger can never stop the device itself from getting a challenge.
 */
export class LiveChallenges {
  private readonly byDevice = new Map<string, { hash: string; expiresAtMs: number }[]>();

  constructor(private readonly max: number) {}

  /** Records a new challenge; returns the hashes of the challenges to delete. */
  add(deviceId: string, hash: string, nowMs: number, expiresAtMs: number): string[] {
    const live = (this.byDevice.get(deviceId) ?? []).filter((c) => c.expiresAtMs > nowMs);
    live.push({ hash, expiresAtMs });
    const evicted = live.splice(0, Math.max(0, live.length - this.max)).map((c) => c.hash);
    this.byDevice.set(deviceId, live);
    return evicted;
  }

  /** Forgets devices whose challenges have all expired (run periodically). */
  prune(nowMs: number): void {
    for (const [deviceId, live] of this.byDevice) {
      if (live.every((c) => c.expiresAtMs <= nowMs)) this.byDevice.delete(deviceId);
    }
  }
}

export interface RateLimits {
  login: LoginGuard;
  /** Enrollment nonces per address, taken before the server-wide nonce budget. */
  enrollNonce: KeyedLimit;
  /** Token challenges per address. */
  tokenChallenge: KeyedLimit;
  liveChallenges: LiveChallenges;
  /** Inventory writes per device (HTTP and WebSocket). */
  inventory: KeyedLimit;
  /** Update reports per device. */
  report: KeyedLimit;
}

export function createRateLimits(config: ServerConfig, metrics: Registry, log: Logger): RateLimits {
  const counter = new Counter({
    name: 'flotilla_rate_limited_total',
    help: 'Requests refused with 429 FLT_RATE_LIMITED, by limit',
    labelNames: ['limit'] as const,
    registers: [metrics],
  });
  // One warning per limit per minute at most: a flood must not flood the log too.
  const lastLogMs = new Map<string, number>();
  const refusals: Refusals = (limit, key) => {
    counter.inc({ limit });
    const now = Date.now();
    if (now - (lastLogMs.get(limit) ?? 0) < 60_000) return;
    lastLogMs.set(limit, now);
    log.warn(
      { limit, key },
      'rate limit reached; refusing with 429 (further refusals: metric flotilla_rate_limited_total)',
    );
  };
  return {
    login: new LoginGuard(config, refusals),
    enrollNonce: new KeyedLimit('enroll_nonce', config.enrollNoncesPerAddress, config.nonceTtlMs, refusals),
    tokenChallenge: new KeyedLimit(
      'token_challenge',
      config.tokenChallengesPerAddressPerMinute,
      60_000,
      refusals,
    ),
    liveChallenges: new LiveChallenges(config.maxLiveChallengesPerDevice),
    inventory: new KeyedLimit('inventory', config.inventoryWritesPerDevicePerHour, 3_600_000, refusals),
    report: new KeyedLimit('report', config.reportsPerDevicePerMinute, 60_000, refusals),
  };
}
