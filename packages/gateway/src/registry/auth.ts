import { FlotillaError } from '@flotilla/protocol';

/** One challenge of a WWW-Authenticate header (RFC 9110 §11.6.1). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header into its challenges. Registries send one, e.g.
 * `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"`.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const param = /\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/y;
  const scheme = /\s*,?\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*/y;
  let current: Challenge | null = null;
  let pos = 0;
  while (pos < header.length) {
    // A parameter (name=value) is tried before a scheme, as both start with a token.
    param.lastIndex = pos;
    const p = current ? param.exec(header) : null;
    if (p && current) {
      const value = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
      current.params[(p[1] as string).toLowerCase()] = value;
      pos = param.lastIndex;
      continue;
    }
    scheme.lastIndex = pos;
    const s = scheme.exec(header);
    if (!s || scheme.lastIndex === pos) break;
    current = { scheme: (s[1] as string).toLowerCase(), params: {} };
    out.push(current);
    pos = scheme.lastIndex;
  }
  return out;
}

/** The token server's answer (distribution token spec): `token` or `access_token`, `expires_in` s. */
export function parseTokenResponse(body: unknown, realm: string): { token: string; expiresInS: number } {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const token =
      typeof b.token === 'string' ? b.token : typeof b.access_token === 'string' ? b.access_token : null;
    const expires = typeof b.expires_in === 'number' && b.expires_in > 0 ? b.expires_in : 60;
    if (token !== null && token.length > 0 && token.length < 64 * 1024) return { token, expiresInS: expires };
  }
  throw new FlotillaError('FLT_REGISTRY_AUTH_FAILED', `the token server ${realm} answered without a token`, {
    details: { realm },
  });
}
