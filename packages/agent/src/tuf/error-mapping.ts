/**
 * tuf-js refusals → Flotilla's stable codes. A failed download says why itself (the fetcher
 * recorded it); metadata tuf-js refused after downloading it is explained by diagnose.ts. Never
 * branches on message text.
 */
import { accessSync, constants } from 'node:fs';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { TufLengthOrHashMismatchError, TufUnsignedMetadataError } from '@flotilla/node-kit';
import type { ErrorCode } from '@flotilla/protocol';
import { diagnoseRefusal } from './diagnose.js';
import type { MetadataLocation } from './memory-metadata.js';
import type { RefreshEvent, TufStep } from './failure-log.js';

export type RepositoryName = 'image' | 'director';

function codeFor(
  thrown: unknown,
  event: RefreshEvent | undefined,
  metadataDir: MetadataLocation | undefined,
): ErrorCode {
  if (event?.kind === 'fetch-failed') return event.tooLong ? 'FLT_TUF_LENGTH' : 'FLT_TUF_FETCH';
  if (event?.kind === 'downloaded' && metadataDir !== undefined) {
    const code = diagnoseRefusal(event.step, event.bytes, metadataDir);
    // Every check passes: what failed is writing the verified metadata (tuf-js persistMetadata).
    if (code === 'FLT_TUF_METADATA_INVALID' && typeof metadataDir === 'string' && !writable(metadataDir))
      return 'FLT_IO';
    return code;
  }
  // Nothing downloaded: the trusted metadata on disk itself (@tufjs/models' public errors).
  if (thrown instanceof TufUnsignedMetadataError) return 'FLT_TUF_SIGNATURE';
  if (thrown instanceof TufLengthOrHashMismatchError) return 'FLT_TUF_HASH';
  return 'FLT_TUF_METADATA_INVALID';
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The FlotillaError for a failed refresh of `repository` whose trusted metadata is in
 * `metadataDir`. `event` is what the fetcher saw last during the refresh.
 */
export function mapRefreshError(
  repository: RepositoryName,
  thrown: unknown,
  event: RefreshEvent | undefined,
  metadataDir?: MetadataLocation,
): FlotillaError {
  if (isFlotillaError(thrown)) return thrown;
  const code = codeFor(thrown, event, metadataDir);
  const error = event?.kind === 'fetch-failed' ? event.error : thrown;
  const reason = error instanceof Error ? error.message : String(error);
  const step: TufStep | undefined = event?.step;
  const details: Record<string, unknown> = { repository, reason };
  if (step) details.step = step;
  if (event?.kind === 'fetch-failed' && event.status !== undefined) details.status = event.status;
  const where = step ? `${repository} ${step}` : repository;
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
