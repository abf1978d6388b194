/**
 * A `fetch` for the agent's JSON client on `node:http` / `node:https` (issue 20's idle footprint).
 *
 * Node's global fetch is undici: its first call loads about 60 internal modules (the V8 heap grows by
 * 2 MB, RSS by 10 MB in an empty Node 20 process, half of it pages of the binary), and the idle
 * agent's periodic work (state polls, heartbeats, token renewal) is all JSON requests. This
 * implements the part of fetch the JSON client uses (method, headers, a string or byte body, an
 * abort signal, `redirect: 'error'`; the answer's status, `headers.get`, its body as an async
 * iterable with `cancel`, `text()`), with keep-alive agents and no limit of connections per host,
 * like undici's (a limit would queue pack requests behind their own idle timeouts). Certificates: the
 * default CA store and NODE_EXTRA_CA_CERTS, as with the global fetch. Errors are shaped like
 * fetch's (a TypeError `fetch failed` whose cause carries the socket's code), so the client's
 * messages and codes stay the same.
 */
import type * as Http from 'node:http';
import type { Agent, IncomingMessage } from 'node:http';
import type { FetchFn } from '@flotilla/node-kit';

type HttpModule = typeof Http;

interface Transport {
  module: HttpModule;
  agent: Agent;
}

let plain: Promise<Transport> | undefined;
let secure: Promise<Transport> | undefined;

// node:https (and with it tls) is loaded on the first https request only.
function transport(protocol: string): Promise<Transport> {
  if (protocol === 'https:') {
    secure ??= import('node:https').then((m) => ({
      module: m as unknown as HttpModule,
      agent: new m.Agent({ keepAlive: true }),
    }));
    return secure;
  }
  plain ??= import('node:http').then((m) => ({
    module: m,
    agent: new m.Agent({ keepAlive: true }),
  }));
  return plain;
}

/** The answer's headers: `get` as on fetch's Headers (names case-insensitive, repeated values joined). */
class NodeHeaders {
  constructor(private readonly raw: IncomingMessage['headers']) {}

  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }

  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }

  forEach(callback: (value: string, name: string) => void): void {
    for (const name of Object.keys(this.raw)) {
      const value = this.get(name);
      if (value !== null) callback(value, name);
    }
  }
}

class NodeBody implements AsyncIterable<Uint8Array> {
  constructor(private readonly message: IncomingMessage) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.message[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  }

  /**
   * Ends the body. One that has arrived whole (an error answer's few bytes, read with its head) is
   * drained, so that its keep-alive connection serves the next request; destroying it would close
   * that connection (a new TCP handshake for the next, on both ends). A body still on its way is
   * cut off with its connection, as before.
   */
  cancel(): Promise<void> {
    const { message } = this;
    if (!message.complete || message.destroyed || message.readableEnded) {
      message.destroy();
      return Promise.resolve();
    }
    // Resolves once drained: the connection is back in the agent's pool for the caller's next request.
    return new Promise((resolve) => {
      const done = (): void => {
        message.off('end', done);
        message.off('close', done);
        resolve();
      };
      message.once('end', done);
      message.once('close', done);
      message.resume();
    });
  }
}

class NodeResponse {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly headers: NodeHeaders;
  readonly body: NodeBody | null;
  readonly url: string;
  readonly redirected = false;

  constructor(message: IncomingMessage, url: string, hasBody: boolean) {
    this.status = message.statusCode ?? 0;
    this.statusText = message.statusMessage ?? '';
    this.ok = this.status >= 200 && this.status <= 299;
    this.headers = new NodeHeaders(message.headers);
    this.url = url;
    this.body = hasBody ? new NodeBody(message) : null;
    if (!hasBody) message.resume();
  }

  async text(): Promise<string> {
    if (this.body === null) return '';
    const chunks: Buffer[] = [];
    for await (const chunk of this.body) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks).toString('utf8');
  }
}

function fetchFailed(cause: unknown): TypeError {
  return new TypeError('fetch failed', { cause });
}

function abortError(signal: AbortSignal): Error {
  // fetch rejects with the signal's reason as it is (a DOMException for AbortSignal.timeout).
  return (signal.reason as Error | undefined) ?? new DOMException('This operation was aborted', 'AbortError');
}

/** The reason of a request cut off by `timeoutMs`: what `AbortSignal.timeout` aborts with. */
function timeoutError(): DOMException {
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
}

/** `nodeFetch`'s options: fetch's, and a timeout of the whole exchange (head and body). */
export type NodeFetchInit = RequestInit & {
  /**
   * Cuts the request (and after the head, its body) after this many milliseconds, with the same
   * error as an `AbortSignal.timeout` signal: one timer, cleared when the body ends, instead of a
   * signal with its listeners (the fleet simulator sends about a dozen requests per device).
   */
  timeoutMs?: number;
};

/** See the module's comment: fetch's contract for the JSON client, on node:http / node:https. */
export const nodeFetch: FetchFn = (input, init) => fetchOnNode(input, init);

/** `nodeFetch` with `timeoutMs` (`NodeFetchInit`). */
export async function fetchOnNode(
  input: string | URL | Request,
  init: NodeFetchInit = {},
): Promise<Response> {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw fetchFailed(new Error(`unsupported scheme ${url.protocol}`));
  const signal = init.signal ?? undefined;
  if (signal?.aborted) throw abortError(signal);
  const method = (init.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = {};
  if (init.headers !== undefined) {
    const given = init.headers as Record<string, string> | [string, string][];
    for (const [name, value] of Array.isArray(given) ? given : Object.entries(given))
      headers[name.toLowerCase()] = value;
  }
  const body = init.body as string | Uint8Array | undefined | null;
  if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array))
    throw new TypeError('nodeFetch: only string and byte bodies are supported');
  if (body !== undefined && body !== null) headers['content-length'] = String(Buffer.byteLength(body));
  const { module, agent } = await transport(url.protocol);

  return new Promise((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let message: IncomingMessage | undefined;
    const fail = (reason: Error): void => {
      if (message) message.destroy(reason);
      else request.destroy();
      if (!settled) {
        settled = true;
        reject(reason);
      }
    };
    const onAbort = (): void => fail(abortError(signal!));
    const request = module.request(url, { method, headers, agent }, (answer) => {
      message = answer;
      const status = answer.statusCode ?? 0;
      if (
        status >= 300 &&
        status < 400 &&
        answer.headers.location !== undefined &&
        init.redirect !== 'manual'
      ) {
        answer.destroy();
        settled = true;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(
          fetchFailed(
            new Error(init.redirect === 'error' ? 'unexpected redirect' : 'redirects are not followed'),
          ),
        );
        return;
      }
      settled = true;
      // After the answer's head the signal (and the timeout) still cut the body, as with fetch.
      if (signal || timer)
        answer.once('close', () => {
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        });
      const hasBody = method !== 'HEAD' && status !== 204 && status !== 304;
      resolve(new NodeResponse(answer, url.href, hasBody) as unknown as Response);
    });
    request.once('error', (e) => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (!settled) {
        settled = true;
        reject(signal?.aborted ? abortError(signal) : fetchFailed(e));
      }
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    if (init.timeoutMs !== undefined) {
      // Unreferenced, as AbortSignal.timeout's timer: a pending timeout alone keeps no process alive.
      timer = setTimeout(() => fail(timeoutError()), init.timeoutMs);
      timer.unref();
    }
    request.end(body ?? undefined);
  });
}
