/**
 * A small HTTP client for the operator API on the global fetch: every request has a timeout, every
 * error response becomes the server's FlotillaError (from its envelope), every success body is
 * checked against the protocol schema before a command uses it.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FlotillaError, ensureFormats, errorFromEnvelope } from '@flotilla/protocol';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type QueryValue = string | number | boolean | undefined;

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

export interface RawResponse {
  status: number;
  headers: Headers;
  body: unknown;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

export class ApiClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly cookie: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.baseUrl = options.baseUrl;
    this.token = options.token;
    this.cookie = options.cookie;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** A client for the same server with other credentials. */
  with(credentials: { token?: string; cookie?: string }): ApiClient {
    return new ApiClient({ baseUrl: this.baseUrl, timeoutMs: this.timeoutMs, ...credentials });
  }

  /** Sends a request; resolves with the validated body, rejects with the server's FlotillaError. */
  async request<S extends TSchema>(
    method: HttpMethod,
    path: string,
    schema: S,
    options: RequestOptions = {},
  ): Promise<Static<S>> {
    const res = await this.send(method, path, options);
    return checkBody(schema, res.body, `${method} ${path}`);
  }

  /** Sends a request whose success carries no body the caller needs (204 or ignored content). */
  async requestVoid(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<void> {
    await this.send(method, path, options);
  }

  /** Sends a request and returns status, headers and parsed body; non-2xx rejects. */
  async send(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<RawResponse> {
    const url = this.url(path, options.query);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (this.cookie) headers.cookie = this.cookie;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
      text = await res.text();
    } catch (cause) {
      throw networkError(url, this.timeoutMs, cause);
    }
    const parsed = parseJson(text);
    if (!res.ok)
      throw errorFromEnvelope(res.status, parsed.ok ? parsed.value : text, res.headers.get('retry-after'));
    if (!parsed.ok && text !== '') {
      throw new FlotillaError(
        'FLT_NETWORK',
        `${method} ${path}: the server answered with something other than JSON`,
        {
          details: { status: res.status, body: text.slice(0, 200) },
        },
      );
    }
    return { status: res.status, headers: res.headers, body: parsed.ok ? parsed.value : undefined };
  }

  private url(path: string, query: Record<string, QueryValue> | undefined): string {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }
}

export function checkBody<S extends TSchema>(schema: S, body: unknown, what: string): Static<S> {
  ensureFormats();
  if (Value.Check(schema, body)) return body;
  const problems = [...Value.Errors(schema, body)].slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`);
  throw new FlotillaError('FLT_NETWORK', `${what}: the server's response does not match the protocol`, {
    details: { problems },
  });
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  if (text === '') return { ok: false };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

function networkError(url: string, timeoutMs: number, cause: unknown): FlotillaError {
  const err = cause as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') {
    return new FlotillaError('FLT_NETWORK', `no answer from ${url} within ${timeoutMs / 1000}s`, { cause });
  }
  const reason = err.cause?.code ?? err.cause?.message ?? err.message;
  return new FlotillaError('FLT_NETWORK', `cannot reach ${url}: ${reason}`, { cause });
}
