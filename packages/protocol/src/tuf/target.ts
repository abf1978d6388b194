/**
 * A release as a TUF target. The target is the release's root object (the root directory of its
 * Merkle tree); its length and SHA-256 are those of the root object's bytes, so the SHA-256 equals the
 * root object's id, and everything below it is verified by hash while the tree is walked.
 *
 * Target path convention: `<app>/<version>/<rootObjectId>` — app and version are names without
 * slashes, the root object id is 64 lowercase hex digits. Putting the id in the path makes every
 * release path unique and immutable: two different trees can never share a target path.
 */
import { TargetFile } from '@tufjs/models';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FlotillaError } from '../errors.js';
import { SealedSecrets, SecretCommitments } from '../secrets.js';

const SEGMENT = '[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}';
const SHA256_HEX = '^[0-9a-f]{64}$';

export const AppName = Type.String({
  pattern: `^${SEGMENT}$`,
  maxLength: 128,
  description: 'App name, no slashes',
});
export const ReleaseVersion = Type.String({
  pattern: `^${SEGMENT}$`,
  maxLength: 128,
  description: 'Release version',
});
export const Sha256Hex = Type.String({
  pattern: SHA256_HEX,
  description: 'SHA-256, 64 lowercase hex digits',
});
export const RuntimeKind = Type.Union([
  Type.Literal('files'),
  Type.Literal('process'),
  Type.Literal('docker'),
  Type.Literal('lxc'),
]);
export type RuntimeKind = Static<typeof RuntimeKind>;

/** The custom fields of a release target (TUF `custom`), in both the image repository and the director. */
export const ReleaseTargetCustom = Type.Object(
  {
    app: AppName,
    version: ReleaseVersion,
    runtime: RuntimeKind,
    config: Type.Optional(
      Type.Record(Type.String({ maxLength: 256 }), Type.Unknown(), { maxProperties: 1024 }),
    ),
    rootObject: Sha256Hex,
    /** Commitments of the secrets the config references (offline-signed); never their values. */
    secrets: Type.Optional(SecretCommitments),
    rollout: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' })),
    /** Director only: each secret sealed to this one device (HPKE), covered by the director's signature. */
    sealedSecrets: Type.Optional(SealedSecrets),
  },
  { additionalProperties: false },
);
export type ReleaseTargetCustom = Static<typeof ReleaseTargetCustom>;

const TARGET_PATH = new RegExp(`^(${SEGMENT})/(${SEGMENT})/([0-9a-f]{64})$`);

/** The target path of a release: `<app>/<version>/<rootObjectId>`. */
export function releaseTargetPath(app: string, version: string, rootObject: string): string {
  const path = `${app}/${version}/${rootObject}`;
  if (!TARGET_PATH.test(path)) {
    throw new FlotillaError('FLT_VALIDATION', `not a valid release target path: ${path}`, {
      details: { app, version, rootObject },
    });
  }
  return path;
}

/** Splits a release target path; throws FLT_TUF_METADATA_INVALID if it does not follow the convention. */
export function parseReleaseTargetPath(path: string): { app: string; version: string; rootObject: string } {
  const m = TARGET_PATH.exec(path);
  if (!m?.[1] || !m[2] || !m[3]) {
    throw new FlotillaError(
      'FLT_TUF_METADATA_INVALID',
      `target path does not follow <app>/<version>/<rootObjectId>: ${path}`,
    );
  }
  return { app: m[1], version: m[2], rootObject: m[3] };
}

/** Validates custom fields; throws FLT_TUF_METADATA_INVALID listing what is wrong. */
export function checkReleaseCustom(custom: unknown): ReleaseTargetCustom {
  if (!Value.Check(ReleaseTargetCustom, custom)) {
    const problems = [...Value.Errors(ReleaseTargetCustom, custom)]
      .slice(0, 10)
      .map((e) => `${e.path || '/'}: ${e.message}`);
    throw new FlotillaError(
      'FLT_TUF_METADATA_INVALID',
      `release target custom fields are invalid: ${problems.join('; ')}`,
      {
        details: { problems },
      },
    );
  }
  return custom;
}

/**
 * The TUF target for a release's root object. `length` is the root object's size in bytes; its
 * SHA-256 is the root object id (custom.rootObject).
 */
export function releaseTarget(custom: ReleaseTargetCustom, length: number): TargetFile {
  const checked = checkReleaseCustom(custom);
  if (!Number.isSafeInteger(length) || length < 1) {
    throw new FlotillaError('FLT_VALIDATION', `target length must be a positive integer, got ${length}`);
  }
  return new TargetFile({
    path: releaseTargetPath(checked.app, checked.version, checked.rootObject),
    length,
    hashes: { sha256: checked.rootObject },
    unrecognizedFields: { custom: structuredClone(checked) as never },
  });
}

/**
 * Reads and checks a release target: the path follows the convention and agrees with the custom
 * fields, and the SHA-256 is the root object id. Throws FLT_TUF_METADATA_INVALID otherwise.
 */
export function readReleaseTarget(target: TargetFile): {
  path: string;
  length: number;
  sha256: string;
  custom: ReleaseTargetCustom;
} {
  const custom = checkReleaseCustom(target.custom);
  const parsed = parseReleaseTargetPath(target.path);
  const sha256 = target.hashes.sha256;
  if (
    parsed.app !== custom.app ||
    parsed.version !== custom.version ||
    parsed.rootObject !== custom.rootObject ||
    sha256 !== custom.rootObject
  ) {
    throw new FlotillaError(
      'FLT_TUF_METADATA_INVALID',
      `target ${target.path}: path, sha256 and custom fields disagree`,
    );
  }
  return { path: target.path, length: target.length, sha256, custom };
}
