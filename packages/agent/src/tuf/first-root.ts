/**
 * The first root of a repository a device trusts when none is configured (trust on first use):
 * downloaded like every later root, through the TUF fetcher and bounded in size while streaming,
 * so a server cannot make the agent buffer an endless answer before anything is verified.
 */
import { mapRefreshError } from './error-mapping.js';
import type { RepositoryName } from './error-mapping.js';
import { FailureLog } from './failure-log.js';
import { RecordingFetcher } from './fetcher.js';
import type { FetchOptions } from './fetcher.js';

/** The largest root accepted, bytes: tuf-js's bound for every root after the first (`rootMaxLength`). */
export const ROOT_MAX_BYTES = 512_000;

/**
 * The bytes of `url` (a `1.root.json`), or null when the server has none (404: nothing signed
 * yet). FLT_TUF_LENGTH when the answer exceeds ROOT_MAX_BYTES; FLT_TUF_FETCH (with the HTTP status
 * in the details) when it cannot be downloaded.
 */
export async function downloadFirstRoot(
  repository: RepositoryName,
  url: string,
  options: FetchOptions,
): Promise<Uint8Array | null> {
  const failures = new FailureLog();
  try {
    return await new RecordingFetcher(failures, options).downloadBytes(url, ROOT_MAX_BYTES);
  } catch (error) {
    const last = failures.last;
    if (last?.kind === 'fetch-failed' && last.status === 404) return null;
    throw mapRefreshError(repository, error, last);
  }
}
