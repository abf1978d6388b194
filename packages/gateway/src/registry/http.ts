import { FlotillaError } from '@flotilla/protocol';
import type { ErrorCode } from '@flotilla/protocol';

/**
 * An AbortSignal that fires when `parent` aborts or when `idleMs` pass without `touch()`: the
 * bound on a registry that stops sending (headers or body) without closing the connection.
 */
export class IdleTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private readonly onParentAbort = (): void => this.controller.abort(this.parent?.reason);
  timedOut = false;

  constructor(
    private readonly idleMs: number,
    private readonly parent: AbortSignal | undefined,
  ) {
    if (parent?.aborted) this.controller.abort(parent.reason);
    else parent?.addEventListener('abort', this.onParentAbort, { once: true });
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(
        new FlotillaError('FLT_REGISTRY_TIMEOUT', `no data from the registry for ${this.idleMs} ms`),
      );
    }, this.idleMs);
    this.timer.unref();
  }

  done(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.parent?.removeEventListener('abort', this.onParentAbort);
  }
}

/** Reads a response body into memory, refusing more than `max` bytes. */
export async function readBounded(
  res: Response,
  max: number,
  what: string,
  idle: IdleTimer,
): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(what, max);
  }
  const parts: Buffer[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      idle.touch();
      total += chunk.byteLength;
      if (total > max) {
        throw tooLarge(what, max);
      }
      parts.push(Buffer.from(chunk));
    }
  }
  return Buffer.concat(parts);
}

function tooLarge(what: string, max: number): FlotillaError {
  return new FlotillaError('FLT_LIMIT_EXCEEDED', `${what} is larger than ${max} bytes`, {
    details: { limit: max },
  });
}

/**
 * Maps a failed fetch (network error, abort, idle timeout) to a FlotillaError. The URL is shown
 * without its query (a token server's query names no secret, but a redirect target may).
 */
export function networkError(
  error: unknown,
  url: string,
  idle: IdleTimer,
  signal: AbortSignal | undefined,
): FlotillaError {
  if (error instanceof FlotillaError) return error;
  if (idle.timedOut) {
    return new FlotillaError(
      'FLT_REGISTRY_TIMEOUT',
      `${safeUrl(url)}: no data for a while; the registry stopped answering`,
      {
        cause: error,
      },
    );
  }
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof FlotillaError) return reason;
    return new FlotillaError('FLT_UNAVAILABLE', 'the pull was cancelled', { cause: error });
  }
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
  return new FlotillaError('FLT_REGISTRY_UNREACHABLE', `${safeUrl(url)}: ${cause}`, { cause: error });
}

export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** The error for an unexpected registry status, with the registry's own error codes if it sent any. */
export async function statusError(res: Response, what: string): Promise<FlotillaError> {
  let registryErrors: unknown;
  try {
    const text = (await readBoundedText(res, 16 * 1024)).trim();
    const body = JSON.parse(text) as { errors?: unknown };
    registryErrors = body.errors;
  } catch {
    registryErrors = undefined;
  }
  const code: ErrorCode =
    res.status === 404
      ? 'FLT_REGISTRY_IMAGE_NOT_FOUND'
      : res.status === 401 || res.status === 403
        ? 'FLT_REGISTRY_AUTH_FAILED'
        : 'FLT_REGISTRY_ERROR';
  const summary = Array.isArray(registryErrors)
    ? registryErrors
        .map((e: unknown) => (e && typeof e === 'object' && 'code' in e ? String(e.code) : ''))
        .filter((s) => s.length > 0)
        .join(', ')
    : '';
  return new FlotillaError(
    code,
    `${what}: the registry answered HTTP ${res.status}${summary ? ` (${summary})` : ''}`,
    {
      details: { status: res.status, ...(registryErrors === undefined ? {} : { registryErrors }) },
    },
  );
}

async function readBoundedText(res: Response, max: number): Promise<string> {
  const parts: Buffer[] = [];
  let total = 0;
  if (!res.body) return '';
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > max) break;
    parts.push(Buffer.from(chunk));
  }
  await res.body.cancel().catch(() => undefined);
  return Buffer.concat(parts).toString('utf8');
}
