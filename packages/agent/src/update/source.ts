/**
 * The one factory of the server side of an update (docs/updates.md): the object fetcher bound to
 * the device token and the TUF-verified assignment that fetches each release's root object through
 * it. The daemon's session and `--dry-run` both build their source here.
 */
import type { Logger } from 'pino';
import type { ChunkCache } from '../cache/chunk-cache.js';
import { STATE_VERSION_HEADER } from '@flotilla/protocol';
import { HttpFetcher } from '../fetch/http-fetcher.js';
import type { AssignmentAhead, ReleaseSpec } from '../model/release.js';
import { tufAssignment } from './tuf-source.js';

/** The device token: the held one unless due for renewal, and a way to drop one the server refused. */
export interface DeviceTokens {
  get(signal: AbortSignal): Promise<string>;
  invalidate(): void;
}

export interface ServerUpdateSourceOptions {
  /** Server base URL. */
  serverUrl: string;
  deviceId: string;
  /** The newest state version the server told (sent with TUF reads: STATE_VERSION_HEADER). */
  stateVersion?: () => number | null;
  dataDir: string;
  /** The image repository's root shipped with the agent; null: trust on first use from the server. */
  trustedRootFile: string | null;
  tokens: DeviceTokens;
  /** The engine's chunk cache (root objects land there). */
  cache: ChunkCache;
  /** Directory for partial per-object downloads (`AppLayout.partialDir`). */
  partialDir: string;
  logger: Logger;
  /** Per-request timeout before the first byte, milliseconds. */
  timeoutMs: number;
  /** Parallel object requests (the fetcher's default when absent). */
  concurrency?: number;
  /** Bandwidth limit over all object requests, bytes per second; 0 = unlimited. */
  bytesPerSecond?: number;
}

export interface ServerUpdateSource {
  fetcher: HttpFetcher;
  /** The verified assignment, one release per app; throws a FLT_TUF_* (or fetch) error on a refusal. */
  assignment: (signal: AbortSignal, ahead?: AssignmentAhead) => Promise<ReleaseSpec[]>;
}

export function serverUpdateSource(options: ServerUpdateSourceOptions): ServerUpdateSource {
  const { tokens } = options;
  // Object requests outlive any one caller's signal (a batch is shared): the token is asked without one.
  const unbounded = new AbortController().signal;
  const fetcher = new HttpFetcher({
    baseUrl: options.serverUrl,
    headers: async (): Promise<Record<string, string>> => {
      const authorization = `Bearer ${await tokens.get(unbounded)}`;
      const told = options.stateVersion?.() ?? null;
      // The version told, so that the server may reuse a recent token check (its scope follows it).
      return told === null ? { authorization } : { authorization, [STATE_VERSION_HEADER]: String(told) };
    },
    partialDir: options.partialDir,
    timeoutMs: options.timeoutMs,
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    ...(options.bytesPerSecond !== undefined && { bytesPerSecond: options.bytesPerSecond }),
  });
  const assignment = tufAssignment({
    serverUrl: options.serverUrl,
    deviceId: options.deviceId,
    ...(options.stateVersion && { stateVersion: options.stateVersion }),
    dataDir: options.dataDir,
    trustedRootFile: options.trustedRootFile,
    token: (signal) => tokens.get(signal),
    invalidateToken: () => tokens.invalidate(),
    cache: options.cache,
    fetcher,
    logger: options.logger,
    timeoutMs: options.timeoutMs,
  });
  return { fetcher, assignment };
}
