/**
 * Short-lived bearer tokens: challenge → sign → token. A token is renewed before it expires
 * (at 80% of its life, measured against the server's clock via the Date header so clock skew does
 * not matter) and whenever the server calls it expired or invalid.
 */
import { DeviceRoutes, TokenChallengeResponse, TokenResponse } from '@flotilla/protocol';
import { signMessage, tokenChallengeMessage } from '@flotilla/node-kit';
import type { DeviceStatus } from '@flotilla/protocol';
import type { DeviceIdentity } from '../state/identity.js';
import type { JsonHttpClient } from '@flotilla/node-kit';

const RENEW_AT_FRACTION = 0.8;

interface HeldToken {
  token: string;
  renewAtMs: number;
}

export class TokenManager {
  private held: HeldToken | null = null;
  private inFlight: Promise<string> | null = null;

  constructor(
    private readonly http: JsonHttpClient,
    private readonly identity: DeviceIdentity,
    private readonly deviceId: string,
    /** Told the device's status with every new token (pending devices get tokens too). */
    private readonly onStatus: (status: DeviceStatus) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** A valid token, fetching a new one when none is held or the held one is due for renewal. */
  async get(signal: AbortSignal): Promise<string> {
    if (this.held && this.now() < this.held.renewAtMs) return this.held.token;
    // One renewal at a time; concurrent callers share it.
    this.inFlight ??= this.fetchToken(signal).finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** Drops the held token (the server refused it); the next get() fetches a new one. */
  invalidate(): void {
    this.held = null;
  }

  private async fetchToken(signal: AbortSignal): Promise<string> {
    const challenge = await this.http.request({
      method: 'POST',
      path: DeviceRoutes.tokenChallenge,
      schema: TokenChallengeResponse,
      body: { deviceId: this.deviceId },
      signal,
    });
    const value = challenge.body!.challenge;
    const signature = signMessage(this.identity.privateKey, tokenChallengeMessage(value, this.deviceId));
    const issued = await this.http.request({
      method: 'POST',
      path: DeviceRoutes.token,
      schema: TokenResponse,
      body: { deviceId: this.deviceId, challenge: value, signature },
      signal,
    });
    const body = issued.body!;
    const receivedAt = this.now();
    // The Date header is truncated to the second: its upper bound keeps the estimate conservative.
    const serverDate = Date.parse(issued.headers.get('date') ?? '');
    const serverNow = Number.isNaN(serverDate) ? receivedAt : serverDate + 1000;
    const lifetimeMs = Date.parse(body.expiresAt) - serverNow;
    this.held = { token: body.token, renewAtMs: receivedAt + Math.max(0, lifetimeMs) * RENEW_AT_FRACTION };
    this.onStatus(body.status);
    return body.token;
  }
}
