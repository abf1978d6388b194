/**
 * What the TUF fetcher saw last during a refresh: the metadata it downloaded, or the download that
 * failed. tuf-js 5 wraps snapshot and targets failures in a message-only error (updater.js
 * loadSnapshot/loadTargets) and exports no error classes, so the mapping to error codes
 * (error-mapping.ts) reads this instead: a failed download says why itself; downloaded bytes that
 * tuf-js then refused are explained by diagnose.ts.
 */
/** `gateway`: the image repository's delegated targets role (`N.gateway.json`, docs/releases.md). */
export type TufStep = 'root' | 'timestamp' | 'snapshot' | 'targets' | 'gateway';

export type RefreshEvent =
  /** `bytes` arrived for `step` (tuf-js verifies them next). */
  | { kind: 'downloaded'; step: TufStep; bytes: Uint8Array }
  /** The download failed: the network, an HTTP status, or longer than allowed. */
  | { kind: 'fetch-failed'; step: TufStep; error: unknown; status?: number; tooLong: boolean };

export class FailureLog {
  last: RefreshEvent | undefined;

  record(event: RefreshEvent): void {
    this.last = event;
  }

  clear(): void {
    this.last = undefined;
  }
}

/** The TUF step a metadata URL belongs to (`N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json`, `N.gateway.json`). */
export function stepOfUrl(url: string): TufStep | undefined {
  const m = /(?:^|\/)(?:\d+\.)?(root|timestamp|snapshot|targets|gateway)\.json$/.exec(new URL(url).pathname);
  return m?.[1] as TufStep | undefined;
}
