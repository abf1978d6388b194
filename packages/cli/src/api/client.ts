/**
 * The CLI's client for the operator API: node-kit's bounded JSON client (timeouts, size bound, the
 * error envelope as the server's FlotillaError, schema checks) with the CLI's method-first calls.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { FlotillaError } from '@flotilla/protocol';
import { JsonHttpClient } from '@flotilla/node-kit';
import type { HttpMethod, QueryValue, RawJsonResponse } from '@flotilla/node-kit';

export type { HttpMethod, QueryValue };

export interface ApiClientOptions {
  /** Canonical server URL (see normalizeServerUrl). */
  baseUrl: string;
  /** API token (`flt_at_…`), sent as a Bearer token. */
  token?: string | undefined;
  /** Session cookie (`flotilla_session=…`), used only by `login` to create a token. */
  cookie?: string | undefined;
  /** Per-request timeout in milliseconds; default 30000. */
  timeoutMs?: number | undefined;
}

export interface RequestOptions {
  query?: Record<string, QueryValue> | undefined;
  body?: unknown;
}

export type RawResponse = RawJsonResponse;

export const DEFAULT_TIMEOUT_MS = 30_000;
/** Largest JSON answer the CLI reads (a long listing stays well below). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export class ApiClient {
  readonly baseUrl: string;
  /** The underlying client, for requests the method-first calls do not cover (binary uploads). */
  readonly http: JsonHttpClient;
  private readonly options: ApiClientOptions;

  constructor(options: ApiClientOptions) {
    this.options = options;
    this.baseUrl = options.baseUrl;
    this.http = new JsonHttpClient({
      baseUrl: options.baseUrl,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxResponseBytes: MAX_RESPONSE_BYTES,
      ...(options.token ? { token: options.token } : {}),
      ...(options.cookie ? { headers: { cookie: options.cookie } } : {}),
    });
  }

  /** The API token requests carry (streams open their own connections with it). */
  get token(): string | undefined {
    return this.options.token;
  }

  /** The credentials as request headers, for requests made outside the JSON client (event streams). */
  authHeaders(): Record<string, string> {
    return {
      ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
      ...(this.options.cookie ? { cookie: this.options.cookie } : {}),
    };
  }

  /** A client for the same server with other credentials. */
  with(credentials: { token?: string; cookie?: string }): ApiClient {
    return new ApiClient({ baseUrl: this.baseUrl, timeoutMs: this.options.timeoutMs, ...credentials });
  }

  /** Sends a request; resolves with the validated body, rejects with the server's FlotillaError. */
  async request<S extends TSchema>(
    method: HttpMethod,
    path: string,
    schema: S,
    options: RequestOptions = {},
  ): Promise<Static<S>> {
    const res = await this.http.request({ method, path, schema, ...options });
    if (res.body === null) {
      throw new FlotillaError('FLT_NETWORK', `${method} ${path}: the server answered without a body`, {
        details: { status: res.status },
      });
    }
    return res.body;
  }

  /** Sends a request whose success carries no body the caller needs (204 or ignored content). */
  async requestVoid(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<void> {
    await this.http.send({ method, path, ...options });
  }

  /** Sends a request and returns status, headers and parsed body; non-2xx rejects. */
  send(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<RawResponse> {
    return this.http.send({ method, path, ...options });
  }
}
