import { FlotillaError } from '@flotilla/protocol';
import { parseChallenges, parseTokenResponse } from './auth.js';
import type { Challenge } from './auth.js';
import { IdleTimer, networkError, readBounded, safeUrl, statusError } from './http.js';
import type { RegistryLimits, RegistryLocation } from './types.js';

export const DEFAULT_REGISTRY_LIMITS: Readonly<RegistryLimits> = Object.freeze({
  maxManifestBytes: 4 * 1024 * 1024,
  maxConfigBytes: 8 * 1024 * 1024,
  maxLayerBytes: 16 * 1024 ** 3,
  maxImageBytes: 64 * 1024 ** 3,
  maxLayers: 256,
  idleTimeoutMs: 30_000,
  maxResumes: 5,
});

export interface RegistryRequest {
  method?: 'GET' | 'HEAD';
  /** Path below the base URL, e.g. `/v2/library/busybox/manifests/latest`. */
  path: string;
  /** The token scope this request needs, e.g. `repository:library/busybox:pull`. */
  scope: string;
  headers?: Record<string, string>;
}

/** A response with its idle timer still running: call `idle.done()` once the body is read. */
export interface RegistryResponse {
  res: Response;
  idle: IdleTimer;
  url: string;
}

/**
 * HTTP to one registry location with its authentication: the first request goes out anonymously
 * (or with the bearer token cached for its scope); a 401's WWW-Authenticate challenge decides
 * between Basic (the location's username and password) and Bearer (a token from the challenge's
 * realm, asked with those credentials when the location has any). Credentials never appear in
 * errors or logs: messages name the URL without user info or query.
 */
export class RegistryClient {
  readonly limits: RegistryLimits;
  private readonly base: string;
  private readonly tokens = new Map<string, { header: string; expiresAtMs: number }>();
  private basicHeader: string | null = null;

  constructor(
    private readonly location: RegistryLocation,
    limits: Partial<RegistryLimits> = {},
    private readonly signal?: AbortSignal,
  ) {
    this.limits = { ...DEFAULT_REGISTRY_LIMITS, ...limits };
    let url: URL;
    try {
      url = new URL(location.url);
    } catch {
      throw new FlotillaError('FLT_CONFIG_INVALID', `registry location URL "${location.url}" is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new FlotillaError(
        'FLT_CONFIG_INVALID',
        `registry location URL must be http(s): ${safeUrl(location.url)}`,
      );
    }
    if (url.username || url.password) {
      throw new FlotillaError(
        'FLT_CONFIG_INVALID',
        'registry location URL must not hold credentials; use its auth settings',
      );
    }
    this.base = url.toString().replace(/\/+$/, '');
  }

  /** Sends a request, answering one authentication challenge. Non-2xx answers are returned as-is. */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    let first = await this.send(req, this.authHeader(req.scope));
    if (first.res.status !== 401) return first;
    const challenge = pickChallenge(first.res.headers.get('www-authenticate') ?? '');
    await first.res.body?.cancel().catch(() => undefined);
    first.idle.done();
    if (!challenge) {
      throw new FlotillaError(
        'FLT_REGISTRY_AUTH_FAILED',
        `${safeUrl(first.url)}: HTTP 401 without a usable challenge`,
      );
    }
    const header = await this.answer(challenge, req.scope);
    first = await this.send(req, header);
    if (first.res.status === 401 || first.res.status === 403) {
      await first.res.body?.cancel().catch(() => undefined);
      first.idle.done();
      throw new FlotillaError(
        'FLT_REGISTRY_AUTH_FAILED',
        `${safeUrl(first.url)}: the registry refused the ${challenge.scheme === 'basic' ? 'username and password' : 'token'} (HTTP ${first.res.status})`,
        { details: { status: first.res.status, scheme: challenge.scheme } },
      );
    }
    return first;
  }

  private authHeader(scope: string): string | null {
    const token = this.tokens.get(scope);
    if (token && token.expiresAtMs > Date.now()) return token.header;
    return this.basicHeader;
  }

  private credentials(): { username: string; password: string } | null {
    const auth = this.location.auth;
    if (auth.type === 'none') return null;
    if (auth.username === undefined || auth.password === undefined) return null;
    return { username: auth.username, password: auth.password };
  }

  private async answer(challenge: Challenge, scope: string): Promise<string> {
    const creds = this.credentials();
    if (challenge.scheme === 'basic') {
      if (!creds) {
        throw new FlotillaError(
          'FLT_REGISTRY_AUTH_FAILED',
          `${this.base} asks for a username and password and the location has none (auth type ${this.location.auth.type})`,
        );
      }
      this.basicHeader = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      return this.basicHeader;
    }
    const realm = challenge.params.realm;
    if (!realm)
      throw new FlotillaError('FLT_REGISTRY_AUTH_FAILED', `${this.base}: Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new FlotillaError('FLT_REGISTRY_AUTH_FAILED', `${this.base}: Bearer realm is not a URL`);
    }
    // Credentials go to the token server only over https, or over http when the registry itself is http.
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.base.startsWith('http:'))) {
      throw new FlotillaError(
        'FLT_REGISTRY_AUTH_FAILED',
        `${this.base}: refusing token realm ${safeUrl(realm)} (not https)`,
      );
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', challenge.params.scope ?? scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (creds)
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    const idle = new IdleTimer(this.limits.idleTimeoutMs, this.signal);
    try {
      let res: Response;
      try {
        res = await fetch(url, { headers, signal: idle.signal, redirect: 'error' });
      } catch (error) {
        throw networkError(error, url.toString(), idle, this.signal);
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new FlotillaError(
          'FLT_REGISTRY_AUTH_FAILED',
          `the token server ${safeUrl(realm)} refused ${creds ? 'the credentials' : 'an anonymous token'} (HTTP ${res.status})`,
          { details: { status: res.status, realm: safeUrl(realm) } },
        );
      }
      let body: unknown;
      try {
        body = JSON.parse((await readBounded(res, 256 * 1024, 'token response', idle)).toString('utf8'));
      } catch (error) {
        if (error instanceof FlotillaError) throw error;
        throw new FlotillaError(
          'FLT_REGISTRY_AUTH_FAILED',
          `the token server ${safeUrl(realm)} answered no JSON`,
        );
      }
      const { token, expiresInS } = parseTokenResponse(body, safeUrl(realm));
      const header = `Bearer ${token}`;
      // Renew 10 s early (a token can expire between check and use).
      this.tokens.set(scope, { header, expiresAtMs: Date.now() + Math.max(0, expiresInS - 10) * 1000 });
      return header;
    } finally {
      idle.done();
    }
  }

  private async send(req: RegistryRequest, authorization: string | null): Promise<RegistryResponse> {
    const url = `${this.base}${req.path}`;
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    if (authorization) headers.authorization = authorization;
    const idle = new IdleTimer(this.limits.idleTimeoutMs, this.signal);
    try {
      // fetch drops the Authorization header on a cross-origin redirect (blob storage redirects).
      const res = await fetch(url, {
        method: req.method ?? 'GET',
        headers,
        signal: idle.signal,
        redirect: 'follow',
      });
      idle.touch();
      return { res, idle, url };
    } catch (error) {
      idle.done();
      throw networkError(error, url, idle, this.signal);
    }
  }

  /** Throws the mapped error for a non-2xx response (and releases it). */
  async fail(r: RegistryResponse, what: string): Promise<never> {
    try {
      throw await statusError(r.res, what);
    } finally {
      r.idle.done();
    }
  }
}

function pickChallenge(header: string): Challenge | null {
  const challenges = parseChallenges(header);
  return (
    challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic') ?? null
  );
}
