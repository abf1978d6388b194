/**
 * The agent's HTTP client on Node's global fetch: every request has a timeout, every response body
 * a size bound (checked while streaming), every error envelope becomes a FlotillaError with the
 * server's stable code, and every success body is checked against the protocol's schema.
 */
import { FLOTILLA_VERSION, FlotillaError, errorFromEnvelope } from '@flotilla/protocol';
import type { Static, TSchema } from '@flotilla/protocol';
import { matches, schemaProblems } from '../util/schema.js';

export type FetchFn = typeof globalThis.fetch;

export interface HttpClientOptions {
  /** Server base URL without a trailing slash. */
  baseUrl: string;
  fetch: FetchFn;
  timeoutMs: number;
  maxResponseBytes: number;
}

export interface HttpRequest<T extends TSchema> {
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  /** Schema of a 2xx body; a body that does not match is refused (FLT_NETWORK). */
  schema: T | null;
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
  /** Aborts the request early (agent stopping). */
  signal?: AbortSignal;
}

export interface HttpResponse<T> {
  status: number;
  headers: Headers;
  /** null for 204/304 or a request without a response schema. */
  body: T | null;
}

export class HttpClient {
  constructor(private readonly options: HttpClientOptions) {}

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  async request<T extends TSchema>(req: HttpRequest<T>): Promise<HttpResponse<Static<T>>> {
    const url = `${this.options.baseUrl}${req.path}`;
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': `flotilla-agent/${FLOTILLA_VERSION}`,
      ...req.headers,
    };
    if (req.token !== undefined) headers.authorization = `Bearer ${req.token}`;
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;

    let response: Response;
    let text: string;
    try {
      response = await this.options.fetch(url, {
        method: req.method,
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal,
        redirect: 'error',
      });
      text = await readBounded(response, this.options.maxResponseBytes);
    } catch (e) {
      if (e instanceof FlotillaError) throw e;
      const reason = timeout.aborted ? `timed out after ${this.options.timeoutMs}ms` : describeFetchError(e);
      throw new FlotillaError('FLT_NETWORK', `${req.method} ${url}: ${reason}`, {
        details: { url },
        cause: e,
      });
    }

    if (response.status === 304 || response.status === 204)
      return { status: response.status, headers: response.headers, body: null };
    const parsed = parseJson(text);
    if (response.status < 200 || response.status >= 300) {
      throw errorFromEnvelope(
        response.status,
        parsed.ok ? parsed.value : text.slice(0, 200),
        response.headers.get('retry-after'),
      );
    }
    if (req.schema === null) return { status: response.status, headers: response.headers, body: null };
    if (!parsed.ok || !matches(req.schema, parsed.value)) {
      const problems = parsed.ok ? schemaProblems(req.schema, parsed.value, 5) : ['not JSON'];
      throw new FlotillaError(
        'FLT_NETWORK',
        `${req.method} ${url}: the server's response does not match the protocol`,
        {
          details: { url, status: response.status, problems },
        },
      );
    }
    return { status: response.status, headers: response.headers, body: parsed.value };
  }
}

async function readBounded(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge(response.url, maxBytes);
  }
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  // Leaving the loop early cancels the stream, so an oversized body is not read to its end.
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(response.url, maxBytes);
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
