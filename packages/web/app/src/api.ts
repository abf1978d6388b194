/**
 * The dashboard's one door to the server: the public JSON API, same origin, session cookie.
 * Every write sends `Content-Type: application/json` (the server's CSRF rule for cookie sessions,
 * docs/api-auth.md "CSRF"), and every error arrives as the server's envelope `{error: {code, message}}`.
 */
import type { ErrorEnvelope } from '@flotilla/protocol';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  /** The route is not there (a server without this feature): the page hides that section. */
  get missingRoute(): boolean {
    return this.status === 404 && this.code === 'FLT_ROUTE_NOT_FOUND';
  }
}

type Listener = () => void;
const unauthenticatedListeners = new Set<Listener>();
/** Called when any request answers 401 (session ended): the app shows the login page. */
export function onUnauthenticated(fn: Listener): () => void {
  unauthenticatedListeners.add(fn);
  return () => unauthenticatedListeners.delete(fn);
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query))
    if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

export async function api<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (method !== 'GET' && method !== 'HEAD') {
    init.headers = { ...init.headers, 'content-type': 'application/json' };
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(withQuery(path, query), init);
  } catch {
    throw new ApiError(0, 'FLT_NETWORK', 'the server cannot be reached; retrying when you act again');
  }
  const text = await res.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!res.ok) {
    const err = (parsed as Partial<ErrorEnvelope> | null)?.error;
    const e = new ApiError(
      res.status,
      err?.code ?? `HTTP_${res.status}`,
      err?.message ?? `${res.status} ${res.statusText}`,
      err?.details,
    );
    if (res.status === 401 && !path.endsWith('/auth/login')) for (const fn of unauthenticatedListeners) fn();
    throw e;
  }
  return parsed as T;
}

export const get = <T>(path: string, query?: Query) => api<T>('GET', path, undefined, query);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const del = <T>(path: string) => api<T>('DELETE', path);

export function path(template: string, params: Record<string, string>): string {
  return template.replace(/:([A-Za-z]+)/g, (_, k: string) => encodeURIComponent(params[k] ?? ''));
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.code})`;
  return e instanceof Error ? e.message : String(e);
}
