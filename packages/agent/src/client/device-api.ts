/** The authenticated device endpoints, each retried once with a fresh token when the server refuses the old one. */
import { DeviceRoutes, DeviceState } from '@flotilla/protocol';
import type { Facts } from '@flotilla/protocol';
import { reactionTo } from './classify.js';
import type { JsonHttpClient } from '@flotilla/node-kit';
import type { TokenManager } from './tokens.js';

export type StatePoll = { changed: false } | { changed: true; state: DeviceState; etag: string | null };

export class DeviceApi {
  constructor(
    private readonly http: JsonHttpClient,
    readonly tokens: TokenManager,
  ) {}

  /** GET state with If-None-Match; a 304 means nothing changed since `etag`. */
  async pollState(etag: string | null, signal: AbortSignal): Promise<StatePoll> {
    const response = await this.withToken(signal, (token) =>
      this.http.request({
        method: 'GET',
        path: DeviceRoutes.state,
        schema: DeviceState,
        token,
        headers: etag === null ? {} : { 'if-none-match': etag },
        signal,
      }),
    );
    if (response.status === 304) return { changed: false };
    return { changed: true, state: response.body!, etag: response.headers.get('etag') };
  }

  async putInventory(facts: Facts, signal: AbortSignal): Promise<void> {
    await this.withToken(signal, (token) =>
      this.http.request({
        method: 'PUT',
        path: DeviceRoutes.inventory,
        schema: null,
        token,
        body: { facts },
        signal,
      }),
    );
  }

  private async withToken<T>(signal: AbortSignal, call: (token: string) => Promise<T>): Promise<T> {
    try {
      return await call(await this.tokens.get(signal));
    } catch (e) {
      if (reactionTo(e) !== 'refresh-token') throw e;
      this.tokens.invalidate();
      return call(await this.tokens.get(signal));
    }
  }
}
