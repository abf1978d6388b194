/**
 * Remembers the last failure inside a tuf-js refresh. tuf-js 5's Updater wraps snapshot and targets
 * failures in a RuntimeError carrying only a message (updater.js loadSnapshot/loadTargets), so the
 * class that tells a rollback from a bad signature is lost; the fetcher and the trusted-set hooks
 * record it here before it is wrapped, and the mapping to error codes reads it back.
 */
export type TufStep = 'root' | 'timestamp' | 'snapshot' | 'targets';

export interface RecordedFailure {
  step: TufStep;
  /** `fetch`: the download failed; `verify`: tuf-js refused the downloaded (or cached) metadata. */
  source: 'fetch' | 'verify';
  error: unknown;
  /** For a version error on snapshot: whether the snapshot's version differs from the one the timestamp names. */
  versionDiffersFromParent?: boolean;
}

export class FailureLog {
  last: RecordedFailure | undefined;

  record(failure: RecordedFailure): void {
    this.last = failure;
  }

  clear(): void {
    this.last = undefined;
  }
}

/** The TUF step a metadata URL belongs to (`N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json`). */
export function stepOfUrl(url: string): TufStep | undefined {
  const m = /(?:^|\/)(?:\d+\.)?(root|timestamp|snapshot|targets)\.json$/.exec(new URL(url).pathname);
  return m?.[1] as TufStep | undefined;
}
