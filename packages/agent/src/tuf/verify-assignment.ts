/**
 * What the device must run, verified against both repositories (docs/security.md "Agent verification").
 * The director (online key) names a release per app; it is accepted only when the image repository
 * (offline targets key) holds the same target with equal length, hashes and release fields. An
 * attacker holding every online key can therefore pick among releases the offline key signed, but
 * cannot make the device install bytes of its own.
 */
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { readReleaseTarget } from '@flotilla/node-kit';
import type { ReleaseTargetCustom, SealedSecrets } from '@flotilla/protocol';
import type { TargetFile } from 'tuf-js';
import type { FetchOptions } from './fetcher.js';
import { TrustedRepository } from './trusted-repository.js';
import type { MemoryMetadata } from './memory-metadata.js';

export interface VerifyAssignmentOptions {
  /** Base URL of the image repository, e.g. `https://server/tuf/image/`. */
  imageRepoUrl: string;
  /** Base URL of this device's director repository, e.g. `https://server/tuf/director/<deviceId>/`. */
  directorRepoUrl: string;
  /** `<data-dir>/tuf`; trusted metadata lives in its `image/` and `director/` subdirectories. */
  metadataDir: string;
  /** Trusted metadata in memory instead (the fleet simulator); `metadataDir` then only names it. */
  memory?: { image: MemoryMetadata; director: MemoryMetadata };
  fetch?: FetchOptions;
}

/** A release the device must run, verified by both repositories. */
export interface VerifiedRelease {
  app: string;
  /** The target path, `<app>/<version>/<rootObjectId>`. */
  path: string;
  /** Length in bytes of the release's root object. */
  length: number;
  /** SHA-256 of the root object (its id). */
  sha256: string;
  /** The release fields as the offline targets key signed them. */
  release: Omit<ReleaseTargetCustom, 'rollout' | 'sealedSecrets'>;
  /** The rollout the director assigned it through, if any. */
  rollout?: string;
  /**
   * The release's secrets sealed to this device by the director (online-signed). Opened and
   * checked against `release.secrets`, the offline-signed commitments, before use.
   */
  sealedSecrets?: SealedSecrets;
}

/**
 * What the two repositories say the device must run: the verified releases, or — a normal state, not
 * a refusal — that nothing was published yet: the director has no timestamp for this device, or the
 * director assigns nothing and the image repository has a root but no release signed into it (after
 * `flotilla keys init`, before the first release). `repository` names the one that is empty.
 */
export type Assignment =
  | { kind: 'assigned'; releases: VerifiedRelease[] }
  | { kind: 'no-releases'; repository: 'image' | 'director' };

/**
 * Refreshes the director, then the image repository, and returns one verified release per app the
 * director names, or `no-releases` (see `Assignment`). Throws a FlotillaError (FLT_TUF_* code,
 * details with the repository and reason) on any refusal; nothing is returned partially. Do not run
 * two calls on the same `metadataDir` at once.
 */
export async function readAssignment(opts: VerifyAssignmentOptions): Promise<Assignment> {
  const director = await TrustedRepository.open({
    name: 'director',
    metadataUrl: opts.directorRepoUrl,
    dir: join(opts.metadataDir, 'director'),
    ...(opts.memory && { memory: opts.memory.director }),
    ...(opts.fetch && { fetch: opts.fetch }),
  });
  const image = await TrustedRepository.open({
    name: 'image',
    metadataUrl: opts.imageRepoUrl,
    dir: join(opts.metadataDir, 'image'),
    ...(opts.memory && { memory: opts.memory.image }),
    ...(opts.fetch && { fetch: opts.fetch }),
  });
  if ((await director.refresh()) === 'unpublished') return { kind: 'no-releases', repository: 'director' };
  const directorTargets = await director.targets();
  if ((await image.refresh()) === 'unpublished') {
    const first = directorTargets[0];
    if (first === undefined) return { kind: 'no-releases', repository: 'image' };
    throw new FlotillaError(
      'FLT_TUF_TARGET_MISSING',
      `the director assigns ${first.path} but the image repository has published no release yet`,
      { details: { repository: 'image', path: first.path } },
    );
  }
  const releases: VerifiedRelease[] = [];
  const apps = new Set<string>();
  for (const directorTarget of directorTargets) {
    const verified = agree(directorTarget, await image.target(directorTarget.path));
    if (apps.has(verified.app)) {
      throw new FlotillaError(
        'FLT_TUF_METADATA_INVALID',
        `director names two releases of app ${verified.app}`,
        { details: { repository: 'director', app: verified.app } },
      );
    }
    apps.add(verified.app);
    releases.push(verified);
  }
  return { kind: 'assigned', releases };
}

/** `readAssignment`'s releases; an empty list when nothing was published yet. */
export async function verifyAssignment(opts: VerifyAssignmentOptions): Promise<VerifiedRelease[]> {
  const assignment = await readAssignment(opts);
  return assignment.kind === 'assigned' ? assignment.releases : [];
}

/**
 * Uptane Standard §5.4.4.2 (full verification): the director's target must match the image
 * repository's target of the same name in length and hashes. Flotilla also requires the release
 * fields (app, version, runtime, configuration, root object) to be equal, so the director cannot
 * change how a signed release runs.
 */
function agree(directorTarget: TargetFile, imageTarget: TargetFile | undefined): VerifiedRelease {
  const path = directorTarget.path;
  if (!imageTarget) {
    throw new FlotillaError(
      'FLT_TUF_TARGET_MISSING',
      `the image repository has no target ${path} that the director assigns`,
      { details: { path } },
    );
  }
  const fromImage = readReleaseTarget(imageTarget);
  const mismatch = (what: string, details: Record<string, unknown>) =>
    new FlotillaError(
      'FLT_TUF_TARGET_MISMATCH',
      `director and image repository disagree on ${path}: ${what}`,
      { details: { path, ...details } },
    );
  if (directorTarget.length !== imageTarget.length)
    throw mismatch('length', { director: directorTarget.length, image: imageTarget.length });
  const algorithms = Object.keys(directorTarget.hashes);
  if (algorithms.length === 0) throw mismatch('the director lists no hashes', {});
  for (const algorithm of algorithms) {
    if (directorTarget.hashes[algorithm] !== imageTarget.hashes[algorithm]) {
      throw mismatch(`${algorithm} hash`, {
        algorithm,
        director: directorTarget.hashes[algorithm],
        image: imageTarget.hashes[algorithm] ?? null,
      });
    }
  }
  const fromDirector = readReleaseTarget(directorTarget);
  // The rollout and the sealed secrets are the director's own; every other field must be the
  // offline-signed one. Sealed secrets are checked against the signed commitments when opened.
  const { rollout, sealedSecrets, ...directorRelease } = fromDirector.custom;
  const { rollout: _imageRollout, sealedSecrets: _imageSealed, ...imageRelease } = fromImage.custom;
  if (!isDeepStrictEqual(directorRelease, imageRelease))
    throw mismatch('release fields', { director: directorRelease, image: imageRelease });
  return {
    app: imageRelease.app,
    path,
    length: imageTarget.length,
    sha256: fromImage.sha256,
    release: imageRelease,
    ...(rollout !== undefined && { rollout }),
    ...(sealedSecrets !== undefined && { sealedSecrets }),
  };
}
