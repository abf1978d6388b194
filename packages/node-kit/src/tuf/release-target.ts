/** A release as a TUF target file (the path convention and custom fields: @flotilla/protocol). */
import { TargetFile } from '@tufjs/models';
import {
  FlotillaError,
  checkReleaseCustom,
  parseReleaseTargetPath,
  releaseTargetPath,
} from '@flotilla/protocol';
import type { ReleaseTargetCustom } from '@flotilla/protocol';

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
