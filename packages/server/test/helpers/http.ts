import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

export interface Call {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  url: string;
  token?: string;
  cookie?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One request through `inject`, with a bearer token or a session cookie. */
export function call(app: FastifyInstance, c: Call): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...(c.headers ?? {}) };
  if (c.token !== undefined) headers.authorization = `Bearer ${c.token}`;
  if (c.cookie !== undefined) headers.cookie = `flotilla_session=${c.cookie}`;
  return app.inject({
    method: c.method,
    url: c.url,
    headers,
    ...(c.body === undefined ? {} : { payload: c.body as Record<string, unknown> }),
  });
}

/** The error code of an envelope answer (asserting the envelope's shape). */
export function errorCode(res: LightMyRequestResponse): string {
  const body = res.json<{ error?: { code?: unknown; message?: unknown } }>();
  if (typeof body.error?.code !== 'string' || typeof body.error.message !== 'string') {
    throw new Error(`not an error envelope (HTTP ${res.statusCode}): ${res.body}`);
  }
  return body.error.code;
}

/** The session secret from a login answer's Set-Cookie. */
export function sessionCookieOf(res: LightMyRequestResponse): string {
  const cookie = res.cookies.find((c) => c.name === 'flotilla_session');
  if (!cookie) throw new Error('no flotilla_session cookie set');
  return cookie.value;
}
