/**
 * A release as a TUF target. The target is the release's root object (the root directory of its
 * Merkle tree); its length and SHA-256 are those of the root object's bytes, so the SHA-256 equals the
 * root object's id, and everything below it is verified by hash while the tree is walked.
 *
 * Target path convention: `<app>/<version>/<rootObjectId>` — app and version are names without
 * slashes, the root object id is 64 lowercase hex digits. Putting the id in the path makes every
 * release path unique and immutable: two different trees can never share a target path.
 */
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
