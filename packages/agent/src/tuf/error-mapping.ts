/**
 * tuf-js and @tufjs/models errors → Flotilla's stable codes. Branches on error classes (and the
 * step that failed), never on message text.
 */
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { TufLengthOrHashMismatchError, TufUnsignedMetadataError } from '@flotilla/node-kit';
import type { ErrorCode } from '@flotilla/protocol';
import {
  BadVersionError,
  DownloadError,
  DownloadHTTPError,
  DownloadLengthMismatchError,
  ExpiredMetadataError,
  PersistError,
  RuntimeError,
} from 'tuf-js/dist/error.js';
import type { RecordedFailure, TufStep } from './failure-log.js';

export type RepositoryName = 'image' | 'director';

function codeFor(error: unknown, failure: RecordedFailure | undefined): ErrorCode {
  const step: TufStep | undefined = failure?.step;
  if (error instanceof TufUnsignedMetadataError) return 'FLT_TUF_SIGNATURE';
  if (error instanceof ExpiredMetadataError) return 'FLT_TUF_FREEZE';
  if (error instanceof BadVersionError) {
    // 5.6.4: targets version ≠ the one the snapshot names; 5.5.4: snapshot version ≠ the timestamp's.
    if (step === 'targets') return 'FLT_TUF_MIX_AND_MATCH';
    if (step === 'snapshot' && failure?.versionDiffersFromParent) return 'FLT_TUF_MIX_AND_MATCH';
    return 'FLT_TUF_ROLLBACK'; // 5.3.5 root, 5.4.3 timestamp/snapshot, 5.5.5 targets version went backwards
  }
  if (error instanceof TufLengthOrHashMismatchError) return 'FLT_TUF_HASH';
  if (error instanceof DownloadLengthMismatchError) return 'FLT_TUF_LENGTH';
  if (error instanceof DownloadError) return 'FLT_TUF_FETCH';
  if (error instanceof PersistError) return 'FLT_IO';
  if (failure?.source === 'fetch') return 'FLT_TUF_FETCH';
  // Everything else tuf-js refuses is malformed or inconsistent metadata: wrong _type, a role missing
  // from the snapshot, fields of the wrong type (RepositoryError, ValueError, SyntaxError, TypeError).
  return 'FLT_TUF_METADATA_INVALID';
}

/**
 * The FlotillaError for a failed refresh of `repository`. `failure` is the last failure recorded
 * during the refresh; it replaces the error tuf-js threw when that one is a message-only wrapper.
 */
export function mapRefreshError(
  repository: RepositoryName,
  thrown: unknown,
  failure: RecordedFailure | undefined,
): FlotillaError {
  if (isFlotillaError(thrown)) return thrown;
  const error = thrown instanceof RuntimeError && failure ? failure.error : thrown;
  // The recorded failure describes `error` only when it is that very error (not an earlier, recovered one).
  const context = failure && failure.error === error ? failure : undefined;
  const code = codeFor(error, context);
  const reason = error instanceof Error ? error.message : String(error);
  const details: Record<string, unknown> = { repository, reason };
  if (context) details.step = context.step;
  if (error instanceof DownloadHTTPError) details.status = error.statusCode;
  const where = context ? `${repository} ${context.step}` : repository;
  return new FlotillaError(code, `${where}: ${describe(code)} (${reason})`, { details, cause: error });
}

function describe(code: ErrorCode): string {
  switch (code) {
    case 'FLT_TUF_SIGNATURE':
      return 'metadata is not signed by a threshold of trusted keys';
    case 'FLT_TUF_FREEZE':
      return 'metadata has expired';
    case 'FLT_TUF_ROLLBACK':
      return 'metadata version is older than the trusted one';
    case 'FLT_TUF_MIX_AND_MATCH':
      return 'metadata version differs from the one its parent role names';
    case 'FLT_TUF_HASH':
      return 'metadata does not match the length or hashes its parent role names';
    case 'FLT_TUF_LENGTH':
      return 'download exceeded its declared or maximum length';
    case 'FLT_TUF_FETCH':
      return 'metadata could not be downloaded';
    case 'FLT_IO':
      return 'trusted metadata could not be written';
    default:
      return 'metadata is malformed';
  }
}
