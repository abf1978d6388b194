/**
 * The HTTP transport the endpoint clients share (object-client, pack-client, tree-pack-client,
 * delta-client): the server's base URL and the device token's headers, a timeout on each silence
 * rather than on the whole transfer, one bandwidth limit over every request, and the answers that
 * say a route does not exist (an older server) or failed. It knows no endpoint.
 */
import { FlotillaError } from '@flotilla/protocol';
import { nodeFetch } from '../util/node-fetch.js';
import type { FetchRequestOptions } from './fetcher.js';
import { TokenBucket } from './token-bucket.js';
import type { BucketClock } from './token-bucket.js';

export interface TransportOptions {
  /** Server base URL (`https://host[:port][/prefix]`). */
  baseUrl: string;
  /** Request headers, e.g. the device token; called per request. */
  headers: () => Promise<Record<string, string>>;
  /** Bandwidth limit in bytes per second over all requests; 0 = unlimited (default). */
  bytesPerSecond?: number;
  /** The bandwidth limit's clock and sleep (default: the real ones); tests record the waits. */
  bandwidthClock?: BucketClock;
  /** Request timeout before the first byte, and for each silence after (default 30 s). */
  timeoutMs?: number;
  /** Default: node-fetch.ts (node:http / node:https, not undici). */
  fetch?: typeof globalThis.fetch;
}

/** A response and the watchdog of its silences; the caller stops it when done with the body. */
export interface Exchange {
  response: Response;
  idle: IdleWatchdog;
}

/** Errors worth another attempt: the network, a cut stream. Anything else (a bad hash, a refusal) is final. */
export const RETRYABLE = new Set(['FLT_NETWORK', 'FLT_UNAVAILABLE']);

export class Transport {
  /** The bandwidth limit shared by every request (the per-object GETs take from it too). */
  readonly bucket: TokenBucket;

  constructor(private readonly options: TransportOptions) {
    this.bucket = new TokenBucket(options.bytesPerSecond ?? 0, options.bandwidthClock);
  }

  get timeoutMs(): number {
    return this.options.timeoutMs ?? 30_000;
  }

  url(path: string): string {
    return `${this.options.baseUrl}${path}`;
  }

  headers(): Promise<Record<string, string>> {
    return this.options.headers();
  }

  /**
   * Sends a request whose timeout covers the wait for the response and then each silence in its
   * body (not the whole transfer: a large pack or delta on a slow or throttled link takes longer
   * than any fixed bound). The caller stops the watchdog when it is done with the body.
   */
  async request(path: string, signal: AbortSignal | undefined, init: RequestInit): Promise<Exchange> {
    const url = this.url(path);
    const idle = new IdleWatchdog(this.timeoutMs);
    try {
      const response = await (this.options.fetch ?? nodeFetch)(url, {
        ...init,
        headers: { ...(await this.options.headers()), ...(init.headers as Record<string, string>) },
        signal: signal ? AbortSignal.any([signal, idle.signal]) : idle.signal,
        redirect: 'error',
      });
      return { response, idle };
    } catch (cause) {
      idle.stop();
      throw new FlotillaError('FLT_NETWORK', `${init.method ?? 'GET'} ${url} failed`, {
        cause,
        details: { url },
      });
    }
  }

  postJson(path: string, body: object, signal: AbortSignal | undefined): Promise<Exchange> {
    return this.request(path, signal, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /**
   * Whether an answer says the route itself does not exist (an older server: 404, 405 or 501 with
   * no FLT_OBJECT_MISSING). A 404 FLT_OBJECT_MISSING (the server lacks what was asked for) is
   * thrown, `lacking` first in its message.
   */
  async routeMissing(response: Response, lacking: string): Promise<boolean> {
    if (response.status !== 404 && response.status !== 405 && response.status !== 501) return false;
    const body = await response.text().catch(() => '');
    if (body.includes('"FLT_OBJECT_MISSING"'))
      throw new FlotillaError('FLT_OBJECT_MISSING', `${lacking}: ${body.slice(0, 300)}`, {
        details: { status: response.status },
      });
    return true;
  }

  async expectOk(response: Response, path: string): Promise<void> {
    if (response.ok && response.body) return;
    const text = await response.text().catch(() => '');
    const code =
      response.status === 404
        ? 'FLT_OBJECT_MISSING'
        : response.status >= 500
          ? 'FLT_NETWORK'
          : 'FLT_BAD_REQUEST';
    throw new FlotillaError(code, `${path}: HTTP ${response.status}`, {
      details: { status: response.status, body: text.slice(0, 300) },
    });
  }

  /** The response body under the bandwidth limit, counting wire bytes. */
  async *body({ response, idle }: Exchange, options: FetchRequestOptions): AsyncGenerator<Uint8Array> {
    // A web stream (fetch) and node-fetch.ts's body are both async iterables; leaving early ends them.
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      const piece = Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      // Time spent in our own bandwidth limit is not the server's silence.
      idle.stop();
      await this.bucket.take(piece.length, options.signal);
      idle.touch();
      options.onWireBytes?.(piece.length);
      yield piece;
    }
  }
}

/** Aborts a request when nothing arrives for `ms`: before the response, and between body pieces. */
export class IdleWatchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ms: number) {
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Something arrived: the silence starts again from now. */
  touch(): void {
    this.stop();
    this.timer = setTimeout(() => this.controller.abort(this.timeoutError()), this.ms);
    this.timer.unref();
  }

  /** Not counting (waiting in our own bandwidth limit), or done. */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private timeoutError(): Error {
    const error = new Error(`nothing received for ${this.ms} ms`);
    error.name = 'TimeoutError';
    return error;
  }
}
