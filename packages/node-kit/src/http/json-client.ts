/**
 * The one JSON HTTP client of the agent and the CLI, on Node's global fetch: every request has a
 * timeout, every response body a size bound (checked while streaming), redirects are refused (a
 * token is never sent on to another host), an error answer becomes the server's FlotillaError from
 * its `{ "error": { code, message, details } }` envelope (or a generic code by status), and a
 * success body is checked against the protocol's schema before a caller sees it.
 *
 * Schemas with `format: 'date-time'` need that format registered in TypeBox's FormatRegistry (the
 * protocol's timestamps use it); the agent and the CLI register it at start.
 */
import { FlotillaError, ensureFormats, errorFromEnvelope } from '@flotilla/protocol';
import type { Static, TSchema } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';

export type FetchFn = typeof globalThis.fetch;
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type QueryValue = string | number | boolean | undefined;

export interface JsonHttpClientOptions {
  /** Server base URL without a trailing slash. */
  baseUrl: string;
  /** Default: the global fetch (tests and the agent inject their own). */
  fetch?: FetchFn;
  /** Per-request timeout in milliseconds (a request may ask for more). */
  timeoutMs: number;
  /** Largest response body read, in bytes; a larger one is refused with FLT_NETWORK. */
  maxResponseBytes: number;
  /** Sent as `user-agent` where given. */
  userAgent?: string;
  /** Sent with every request (a session cookie, for example). */
  headers?: Record<string, string>;
  /** Bearer token sent with every request unless a request names its own. */
  token?: string;
}

export interface JsonRequestBase {
  method: HttpMethod;
  /** Path below the base URL, starting with `/`. */
  path: string;
  /** Query parameters; undefined values are left out. */
  query?: Record<string, QueryValue> | undefined;
  /** A JSON body. */
  body?: unknown;
  /** A binary body with its content type, instead of `body`. */
  raw?: { bytes: Uint8Array; contentType: string };
  token?: string | undefined;
  headers?: Record<string, string>;
  /** Aborts the request early (the caller is stopping). */
  signal?: AbortSignal | undefined;
  /** Overrides the client's timeout for this request (an upload over a slow link). */
  timeoutMs?: number | undefined;
}

export interface JsonRequest<T extends TSchema> extends JsonRequestBase {
  /** Schema of a 2xx body; a body that does not match is refused (FLT_NETWORK). null: body ignored. */
  schema: T | null;
}

export interface JsonResponse<T> {
  status: number;
  headers: Headers;
  /** null for 204/304 or a request without a response schema. */
  body: T | null;
}

export interface RawJsonResponse {
  status: number;
  headers: Headers;
  /** The parsed JSON body; undefined where the answer had none. */
  body: unknown;
}

export class JsonHttpClient {
  constructor(private readonly options: JsonHttpClientOptions) {}

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  get timeoutMs(): number {
    return this.options.timeoutMs;
  }

  /** A client for the same server with other options (credentials, timeout). */
  with(options: Partial<JsonHttpClientOptions>): JsonHttpClient {
    return new JsonHttpClient({ ...this.options, ...options });
  }

  /** Sends a request; resolves with the schema-checked body, rejects with a FlotillaError. */
  async request<T extends TSchema>(req: JsonRequest<T>): Promise<JsonResponse<Static<T>>> {
    const { response, text, url } = await this.exchange(req);
    const { status, headers } = response;
    if (status === 304 || status === 204 || req.schema === null) return { status, headers, body: null };
    const parsed = parseJson(text);
    if (!parsed.ok) throw notProtocol(req.method, url, status, ['not JSON']);
    checkBody(req.schema, parsed.value, `${req.method} ${url}`, status);
    return { status, headers, body: parsed.value };
  }

  /**
   * Sends a request and returns the parsed JSON body unchecked (the caller checks it, or needs only
   * the headers); a 2xx answer that is neither empty nor JSON is refused (FLT_NETWORK).
   */
  async send(req: JsonRequestBase): Promise<RawJsonResponse> {
    const { response, text, url } = await this.exchange(req);
    const parsed = parseJson(text);
    if (!parsed.ok && text !== '') {
      throw new FlotillaError(
        'FLT_NETWORK',
        `${req.method} ${url}: the server answered with something other than JSON`,
        {
          details: { url, status: response.status, body: text.slice(0, 200) },
        },
      );
    }
    return { status: response.status, headers: response.headers, body: parsed.ok ? parsed.value : undefined };
  }

  /** One round trip: the response and its bounded text; an error status (not 304) throws its envelope. */
  private async exchange(req: JsonRequestBase): Promise<{ response: Response; text: string; url: string }> {
    const url = this.url(req.path, req.query);
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...this.options.headers,
      ...req.headers,
    };
    if (this.options.userAgent !== undefined) headers['user-agent'] = this.options.userAgent;
    const token = req.token ?? this.options.token;
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    let body: string | Uint8Array | undefined;
    if (req.raw !== undefined) {
      headers['content-type'] = req.raw.contentType;
      body = req.raw.bytes;
    } else if (req.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(req.body);
    }
    const timeoutMs = req.timeoutMs ?? this.options.timeoutMs;
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    // One controller for the timeout and the caller's signal, cleared when the exchange ends (cheaper
    // than AbortSignal.timeout and AbortSignal.any, which the fleet simulator paid for on every report).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    }, timeoutMs);
    timer.unref();
    const callerSignal = req.signal;
    const onAbort = (): void => controller.abort(callerSignal?.reason);
    if (callerSignal?.aborted) onAbort();
    else callerSignal?.addEventListener('abort', onAbort, { once: true });

    let response: Response;
    let text: string;
    try {
      response = await fetchFn(url, {
        method: req.method,
        headers,
        body,
        signal: controller.signal,
        redirect: 'error',
      });
      text = await readBounded(response, url, this.options.maxResponseBytes);
    } catch (e) {
      if (e instanceof FlotillaError) throw e;
      const reason = timedOut
        ? `no answer within ${timeoutMs}ms`
        : `cannot reach the server: ${describeFetchError(e)}`;
      throw new FlotillaError('FLT_NETWORK', `${req.method} ${url}: ${reason}`, {
        details: { url },
        cause: e,
      });
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onAbort);
    }
    if ((response.status < 200 || response.status >= 300) && response.status !== 304) {
      const parsed = parseJson(text);
      throw errorFromEnvelope(
        response.status,
        parsed.ok ? parsed.value : text.slice(0, 200),
        response.headers.get('retry-after'),
      );
    }
    return { response, text, url };
  }

  private url(path: string, query: Record<string, QueryValue> | undefined): string {
    if (query === undefined) return `${this.options.baseUrl}${path}`;
    const url = new URL(this.options.baseUrl + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }
}

/** Checks a body against its protocol schema; refuses it (FLT_NETWORK) with up to five problems. */
export function checkBody<S extends TSchema>(
  schema: S,
  body: unknown,
  what: string,
  status?: number,
): Static<S> {
  // The schemas carry `date-time`: registered here, not left to whoever imported what first (in the
  // agent bundle, modules initialise lazily and the token answer came before any registration).
  ensureFormats();
  if (Value.Check(schema, body)) return body;
  const problems: string[] = [];
  for (const error of Value.Errors(schema, body)) {
    problems.push(`${error.path || '/'}: ${error.message}`);
    if (problems.length >= 5) break;
  }
  throw notProtocol('', what, status, problems);
}

function notProtocol(
  method: string,
  url: string,
  status: number | undefined,
  problems: string[],
): FlotillaError {
  const what = method === '' ? url : `${method} ${url}`;
  return new FlotillaError('FLT_NETWORK', `${what}: the server's response does not match the protocol`, {
    details: { url, status, problems },
  });
}

async function readBounded(response: Response, url: string, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge(url, maxBytes);
  }
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  // Leaving the loop early cancels the stream, so an oversized body is not read to its end.
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(url, maxBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tooLarge(url: string, maxBytes: number): FlotillaError {
  return new FlotillaError('FLT_NETWORK', `${url}: response larger than ${maxBytes} bytes`, {
    details: { url, maxBytes },
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

function describeFetchError(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause as { code?: unknown; message?: unknown } | undefined;
    if (cause && typeof cause.code === 'string') return `${e.message} (${cause.code})`;
    if (cause && typeof cause.message === 'string') return `${e.message} (${cause.message})`;
    return e.name === 'AbortError' ? 'aborted' : e.message;
  }
  return String(e);
}
