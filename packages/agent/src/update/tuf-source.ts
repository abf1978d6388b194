/**
 * The verified assignment from the TUF layer (docs/security.md): trusted roots provisioned once,
 * both repositories refreshed, director and image in agreement, then each release's root object
 * fetched into the cache and checked against the signed length (its hash is its id, checked on
 * arrival). The per-object URL serves codec frames, so the root object travels through the same
 * verified fetcher as every other object.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError, STATE_VERSION_HEADER, isFlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { ObjectFetcher } from '../fetch/fetcher.js';
import type { VerifiedRelease } from '../tuf/index.js';
import type { AssignmentAhead, ReleaseSpec } from '../model/release.js';

export interface TufSourceOptions {
  serverUrl: string;
  deviceId: string;
  /**
   * The newest state version the server told (`welcome`, `state-changed`, the state poll), sent
   * with every TUF read (STATE_VERSION_HEADER): the server may then answer the director's reads
   * from a token check of a few seconds ago that read at least that version.
   */
  stateVersion?: () => number | null;
  dataDir: string;
  /** The image repository's root shipped with the agent; null: trust on first use from the server. */
  trustedRootFile: string | null;
  /** The device token (the held one unless it is due for renewal). */
  token: (signal: AbortSignal) => Promise<string>;
  /** Drops the held token after the server refused it (401); the next `token()` fetches a new one. */
  invalidateToken: () => void;
  cache: ChunkCache;
  fetcher: ObjectFetcher;
  logger: Logger;
  timeoutMs: number;
}

const MAX_ROOT_OBJECT_BYTES = 32 * 1024 * 1024;

export function tufAssignment(
  options: TufSourceOptions,
): (signal: AbortSignal, ahead?: AssignmentAhead) => Promise<ReleaseSpec[]> {
  return async (signal, ahead) => {
    let verified: VerifiedRelease[];
    try {
      verified = await verifiedReleases(options, await options.token(signal));
    } catch (error) {
      // Every TUF file needs the token; one the server no longer takes (expired early, clock skew,
      // server restored) is dropped and the refresh retried once with a new one.
      if (!isTokenRefusal(error) || signal.aborted) throw error;
      options.logger.debug('the server refused the device token for TUF metadata; renewing it');
      options.invalidateToken();
      verified = await verifiedReleases(options, await options.token(signal));
    }
    const releases = verified.map(releaseOf);
    // The runtimes learn what is coming before the root objects are fetched.
    ahead?.(releases);
    for (const v of verified) await fetchRootObject(v, options, signal);
    return releases;
  };
}

/** A 401 from the server: the token was refused (FLT_TUF_FETCH with the HTTP status in its details). */
function isTokenRefusal(error: unknown): boolean {
  if (!isFlotillaError(error) || error.code !== 'FLT_TUF_FETCH') return false;
  const details = error.details as { status?: unknown } | undefined;
  return details?.status === 401;
}

/**
 * The TUF client (tuf-js, @tufjs/models and the verification code), loaded at the first refresh:
 * an agent bundle keeps it in a chunk of its own (docs/agent-lifecycle.md "Footprint").
 */
function tuf() {
  return import('../tuf/index.js');
}

async function verifiedReleases(options: TufSourceOptions, token: string): Promise<VerifiedRelease[]> {
  const { readAssignment } = await tuf();
  const told = options.stateVersion?.() ?? null;
  const headers = (): Record<string, string> =>
    told === null
      ? { authorization: `Bearer ${token}` }
      : { authorization: `Bearer ${token}`, [STATE_VERSION_HEADER]: String(told) };
  const metadataDir = join(options.dataDir, 'tuf');
  const imageRepoUrl = `${options.serverUrl}/tuf/image/`;
  const directorRepoUrl = `${options.serverUrl}/tuf/director/${options.deviceId}/`;
  const imageReady = await provision(
    'image',
    join(metadataDir, 'image'),
    options.trustedRootFile,
    `${imageRepoUrl}1.root.json`,
    headers,
    options,
  );
  const directorReady =
    imageReady &&
    (await provision(
      'director',
      join(metadataDir, 'director'),
      null,
      `${directorRepoUrl}1.root.json`,
      headers,
      options,
    ));
  // A server whose operators have not run `flotilla keys init` yet has nothing signed: expected,
  // and quiet (an expected condition: typed and handled quietly).
  if (!directorReady) return [];
  const assignment = await readAssignment({
    imageRepoUrl,
    directorRepoUrl,
    metadataDir,
    fetch: { headers, timeoutMs: options.timeoutMs },
  });
  if (assignment.kind === 'no-releases') {
    // Keys initialised, no release signed (or nothing assigned to this device) yet: also expected.
    options.logger.debug(
      { repository: assignment.repository },
      'no releases yet: the repository has published nothing; nothing to install',
    );
    return [];
  }
  return assignment.releases;
}

/** The release's root object, fetched into the cache unless there, checked against the signed length. */
async function fetchRootObject(
  v: VerifiedRelease,
  options: TufSourceOptions,
  signal: AbortSignal,
): Promise<void> {
  if (v.length > MAX_ROOT_OBJECT_BYTES) {
    throw new FlotillaError(
      'FLT_TUF_LENGTH',
      `root object of ${v.path} is ${v.length} bytes, over the limit`,
      {
        details: { path: v.path },
      },
    );
  }
  if (!(await options.cache.has(v.sha256))) {
    // A failure here is about this release: say which, so that the report names it.
    await options.fetcher.fetch([v.sha256], options.cache, { signal }).catch((e: unknown) => {
      if (!isFlotillaError(e) || signal.aborted) throw e;
      const details = e.details && typeof e.details === 'object' ? e.details : {};
      throw new FlotillaError(e.code, `root object of ${v.path}: ${e.message}`, {
        details: { ...details, path: v.path },
        cause: e,
      });
    });
  }
  const bytes = await options.cache.getObject(v.sha256);
  if (bytes.length !== v.length) {
    await options.cache.remove(v.sha256);
    throw new FlotillaError(
      'FLT_TUF_LENGTH',
      `root object of ${v.path} is ${bytes.length} bytes, ${v.length} signed`,
      {
        details: { path: v.path, expected: v.length, received: bytes.length },
      },
    );
  }
}

/** The release a verified target describes. */
function releaseOf(v: VerifiedRelease): ReleaseSpec {
  return {
    app: v.app,
    version: v.release.version,
    runtime: v.release.runtime,
    root: v.release.rootObject,
    targetPath: v.path,
    config: v.release.config ?? {},
    ...(v.release.secrets !== undefined && {
      secrets: Object.fromEntries(
        Object.entries(v.release.secrets).map(([name, commitment]) => [
          name,
          { commitment, sealed: v.sealedSecrets?.[name] ?? null },
        ]),
      ),
    }),
  };
}

async function provision(
  repository: 'image' | 'director',
  dir: string,
  configured: string | null,
  url: string,
  headers: () => Record<string, string>,
  options: TufSourceOptions,
): Promise<boolean> {
  if (existsSync(join(dir, 'root.json'))) return true;
  const { downloadFirstRoot, provisionTrustedRoot } = await tuf();
  let bytes: Uint8Array;
  if (configured !== null) {
    bytes = await readConfiguredRoot(configured);
  } else {
    const downloaded = await downloadFirstRoot(repository, url, { headers, timeoutMs: options.timeoutMs });
    if (downloaded === null) {
      options.logger.debug({ url }, 'the server has no signed metadata yet; nothing to install');
      return false;
    }
    bytes = downloaded;
    options.logger.warn(
      { url },
      "no trusted root configured: trusting the server's first root (trust on first use)",
    );
  }
  await provisionTrustedRoot(dir, bytes);
  return true;
}

/** The root shipped with the agent, bounded like a downloaded one. */
async function readConfiguredRoot(path: string): Promise<Uint8Array> {
  const { ROOT_MAX_BYTES } = await tuf();
  const size = (await stat(path).catch(() => null))?.size ?? 0;
  if (size > ROOT_MAX_BYTES)
    throw new FlotillaError(
      'FLT_CONFIG_INVALID',
      `the trusted root ${path} is ${size} bytes, over the ${ROOT_MAX_BYTES}-byte limit of a root`,
      { details: { path, size, limit: ROOT_MAX_BYTES } },
    );
  return readFile(path).catch((cause: unknown) => {
    throw new FlotillaError('FLT_CONFIG_INVALID', `cannot read the trusted root ${path}`, { cause });
  });
}
