/**
 * `requireDevice()`: authenticates `Authorization: Bearer flt_dt_…` with one indexed query joining
 * device_tokens and devices (the state poll's hot path: no writes, last-seen goes to presence).
 *
 * Routes that need neither the device's current state version nor anything but "an accepted
 * device" (reports, the image repository's metadata) may reuse a token's check for
 * DEVICE_AUTH_CACHE_MS (`{ cached: true }`): a device's update reads and reports several times
 * within a second. The director's reads may too, but only a check that read at least the state
 * version the device says it was told about (`minStateVersion`, from STATE_VERSION_HEADER): see
 * docs/devices.md "Director reads". The reuse ends at once on this server when the device is
 * accepted, rejected, revoked or assigned (the events of those changes), and at the token's
 * expiry; a status change made through another server replica (or in the database) is seen within
 * DEVICE_AUTH_CACHE_MS.
 */
import { CompiledQuery } from 'kysely';
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { FlotillaError, STATE_VERSION_HEADER } from '@flotilla/protocol';
import { SECRET_PREFIX, hashSecret } from '@flotilla/node-kit';
import type { DeviceStatus } from '@flotilla/protocol';
import type { DeviceRuntime } from '../runtime.js';
import { deviceIdOfToken } from './service.js';

/** How long a token's check is reused by routes that allow it (`{ cached: true }`). */
export const DEVICE_AUTH_CACHE_MS = 5_000;
/** Most token checks kept (the oldest go first). */
const MAX_CACHED = 50_000;

interface CachedAuth {
  auth: DeviceAuth;
  expiresAt: string;
  /** Reused until then (ms, the process's monotonic clock). */
  until: number;
}

export interface DeviceAuthOptions {
  /**
   * Whether a check of the same token up to DEVICE_AUTH_CACHE_MS ago may answer: then the
   * `stateVersion` may be that old. Only for routes that do not use it, or with `minStateVersion`.
   */
  cached?: boolean;
  /** With `cached`: only a check that read this state version or a newer one may answer. */
  minStateVersion?: number;
}

export interface DeviceAuth {
  deviceId: string;
  status: DeviceStatus;
  stateVersion: number;
}

interface TokenRow {
  device_id: string;
  status: DeviceStatus;
  state_version: number | string;
  expires_at: string;
}

export interface DeviceAuthenticator {
  /** Resolves a bearer header to a device; throws 401/403 FlotillaErrors. */
  authenticate(header: string | undefined, opts?: DeviceAuthOptions): Promise<DeviceAuth>;
  /** A preHandler that sets `request.principal` to the device. */
  requireDevice(opts?: DeviceAuthOptions): preHandlerAsyncHookHandler;
  /**
   * Drops the device's reused checks (its status or assignments changed on this server); a check
   * under way for it is not kept either.
   */
  forget(deviceId: string): void;
  /** The authentication of a request that passed `requireDevice()`. */
  authOf(request: FastifyRequest): DeviceAuth;
  /**
   * For routes open to operators and devices: null for an operator (the operator auth hook already
   * ran), else the accepted device of the `Authorization: Bearer flt_dt_…` header, which becomes
   * the request's principal; FLT_UNAUTHENTICATED without either.
   */
  operatorOrAcceptedDevice(request: FastifyRequest, opts?: DeviceAuthOptions): Promise<DeviceAuth | null>;
}

const DEVICE_BEARER = new RegExp(`^Bearer +${SECRET_PREFIX.deviceToken}`, 'i');

/**
 * For routes whose answer depends on the device's state version (director metadata, objects): a
 * reused check will do if it read at least the version the device says it was told
 * (STATE_VERSION_HEADER, docs/devices.md "Director reads"); without the header, or with one that is
 * not a decimal integer, none.
 */
export function reuseIfTold(request: FastifyRequest): DeviceAuthOptions | undefined {
  const value = request.headers[STATE_VERSION_HEADER];
  if (typeof value !== 'string' || !/^[0-9]{1,15}$/.test(value)) return undefined;
  return { cached: true, minStateVersion: Number(value) };
}

/** Throws the device lifecycle error for anything but an accepted device. */
export function requireAccepted(status: string): void {
  if (status === 'accepted') return;
  if (status === 'pending') throw new FlotillaError('FLT_DEVICE_PENDING', 'this device awaits acceptance');
  if (status === 'rejected') throw new FlotillaError('FLT_DEVICE_REJECTED', 'this device was rejected');
  throw new FlotillaError('FLT_DEVICE_REVOKED', 'this device was revoked');
}

export function createDeviceAuthenticator(rt: DeviceRuntime): DeviceAuthenticator {
  const { ctx } = rt;
  // Compiled once; each request only swaps the parameter.
  const lookup = ctx.db
    .selectFrom('device_tokens as t')
    .innerJoin('devices as d', 'd.id', 't.device_id')
    .select(['t.device_id', 'd.status', 'd.state_version', 't.expires_at'])
    .where('t.token_hash', '=', '')
    .compile();
  const auths = new WeakMap<FastifyRequest, DeviceAuth>();
  /** Recent checks by token hash (insertion order: the oldest first). */
  const cache = new Map<string, CachedAuth>();
  /** The token hashes in `cache` of each device (usually one; two while a token is renewed). */
  const hashesOf = new Map<string, Set<string>>();
  /** Counts `forget` calls; a check remembers the count it started at. */
  let forgets = 0;
  /** Per device, the count of its last `forget` (kept while checks are under way). */
  const forgottenAt = new Map<string, number>();
  /** Checks (database reads) under way; at 0 `forgottenAt` is not needed and is cleared. */
  let checking = 0;
  /** `forgottenAt` was cleared when full at this count: checks started before it are not kept. */
  let clearedAt = 0;

  const drop = (hash: string, deviceId: string) => {
    cache.delete(hash);
    const hashes = hashesOf.get(deviceId);
    if (hashes === undefined) return;
    hashes.delete(hash);
    if (hashes.size === 0) hashesOf.delete(deviceId);
  };

  function forget(deviceId: string): void {
    forgets++;
    const hashes = hashesOf.get(deviceId);
    if (hashes !== undefined) {
      for (const hash of hashes) cache.delete(hash);
      hashesOf.delete(deviceId);
    }
    if (checking === 0) return;
    forgottenAt.set(deviceId, forgets);
    if (forgottenAt.size > MAX_CACHED) {
      forgottenAt.clear();
      clearedAt = forgets;
    }
  }

  /** Whether no `forget` of the device came since a check started at `started`. */
  const unforgotten = (deviceId: string, started: number) =>
    started >= clearedAt && (forgottenAt.get(deviceId) ?? 0) <= started;

  const keep = (hash: string, entry: CachedAuth) => {
    const { deviceId } = entry.auth;
    const previous = cache.get(hash);
    if (previous !== undefined) drop(hash, previous.auth.deviceId);
    cache.set(hash, entry);
    let hashes = hashesOf.get(deviceId);
    if (hashes === undefined) hashesOf.set(deviceId, (hashes = new Set()));
    hashes.add(hash);
    if (cache.size > MAX_CACHED) {
      const [oldest, old] = cache.entries().next().value!;
      drop(oldest, old.auth.deviceId);
    }
  };

  rt.events?.subscribe(
    (e) =>
      e.type === 'device.accepted' ||
      e.type === 'device.rejected' ||
      e.type === 'device.revoked' ||
      e.type === 'device.assigned',
    (e) => {
      if ('deviceId' in e) forget(e.deviceId);
    },
  );

  async function authenticate(header: string | undefined, opts: DeviceAuthOptions = {}): Promise<DeviceAuth> {
    const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    const token = m?.[1];
    if (token === undefined)
      throw new FlotillaError('FLT_UNAUTHENTICATED', 'send a device token: Authorization: Bearer flt_dt_…');
    if (!token.startsWith(SECRET_PREFIX.deviceToken))
      throw new FlotillaError('FLT_TOKEN_INVALID', 'not a device token');
    const hash = hashSecret(token);
    if (opts.cached) {
      const hit = cache.get(hash);
      if (
        hit !== undefined &&
        hit.until > performance.now() &&
        (opts.minStateVersion === undefined || hit.auth.stateVersion >= opts.minStateVersion)
      ) {
        if (hit.expiresAt <= ctx.clock.now().toISOString())
          throw new FlotillaError('FLT_TOKEN_EXPIRED', 'the device token has expired; request a new one');
        rt.presence.touch(hit.auth.deviceId);
        return hit.auth;
      }
    }
    const started = forgets;
    let row: TokenRow | undefined;
    let keepable = false;
    checking++;
    try {
      row = (await ctx.db.executeQuery<TokenRow>(CompiledQuery.raw(lookup.sql, [hash]))).rows[0];
      keepable = row !== undefined && unforgotten(row.device_id, started);
    } finally {
      if (--checking === 0) forgottenAt.clear();
    }
    if (!row) throw await unknownToken(token);
    if (row.status === 'revoked') throw new FlotillaError('FLT_DEVICE_REVOKED', 'this device was revoked');
    if (row.expires_at <= ctx.clock.now().toISOString()) {
      throw new FlotillaError('FLT_TOKEN_EXPIRED', 'the device token has expired; request a new one');
    }
    rt.presence.touch(row.device_id);
    const auth: DeviceAuth = {
      deviceId: row.device_id,
      status: row.status,
      stateVersion: Number(row.state_version),
    };
    if (keepable)
      keep(hash, { auth, expiresAt: row.expires_at, until: performance.now() + DEVICE_AUTH_CACHE_MS });
    return auth;
  }

  /** Revocation deletes a device's tokens; its token still names it, so say why it stopped working. */
  async function unknownToken(token: string): Promise<FlotillaError> {
    const deviceId = deviceIdOfToken(token);
    if (deviceId !== null) {
      const device = await ctx.db
        .selectFrom('devices')
        .select('status')
        .where('id', '=', deviceId)
        .executeTakeFirst();
      if (device?.status === 'revoked')
        return new FlotillaError('FLT_DEVICE_REVOKED', 'this device was revoked');
    }
    return new FlotillaError('FLT_TOKEN_INVALID', 'unknown device token');
  }

  const authenticateRequest = async (
    request: FastifyRequest,
    opts?: DeviceAuthOptions,
  ): Promise<DeviceAuth> => {
    const auth = await authenticate(request.headers.authorization, opts);
    request.principal = { kind: 'device', deviceId: auth.deviceId, status: auth.status };
    auths.set(request, auth);
    return auth;
  };

  return {
    authenticate,
    forget,
    requireDevice: (opts) =>
      async function requireDevice(request) {
        await authenticateRequest(request, opts);
      },
    async operatorOrAcceptedDevice(request, opts) {
      if (request.principal?.kind === 'user') return null;
      const header = request.headers.authorization;
      if (header === undefined || !DEVICE_BEARER.test(header))
        throw new FlotillaError('FLT_UNAUTHENTICATED', 'send an operator token or a device token');
      const auth = await authenticateRequest(request, opts);
      requireAccepted(auth.status);
      return auth;
    },
    authOf(request) {
      const auth = auths.get(request);
      if (!auth) throw new FlotillaError('FLT_UNAUTHENTICATED', 'not authenticated as a device');
      return auth;
    },
  };
}
