/** What the step executors need; every side effect sits behind one of these. */
import type { Logger } from 'pino';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { Runtime } from '../runtimes/runtime.js';
import type { UpdateRecords } from '../state/update-records.js';
import type { ReleaseStamps } from '../state/release-stamps.js';
import type { ReleaseSpec } from '../model/release.js';
import type { AppLayout } from './layout.js';
import type { DurableTrees } from './durable.js';

export interface FetchOutcome {
  /** Bytes on the wire. */
  wireBytes: number;
}

/** How staging takes unchanged files from installed releases: hardlink, copy, or not at all. */
export type StageReuse = 'link' | 'copy' | 'off';

/**
 * How staging verifies an installed file before linking it: `stamp` trusts one whose inode, size,
 * mode and modification time match what the last staging verified, and reads the rest; `content`
 * reads every one (docs/updates.md "Staging").
 */
export type StageVerify = 'stamp' | 'content';

export interface ApplyContext {
  layout: AppLayout;
  cache: ChunkCache;
  records: UpdateRecords;
  stamps: ReleaseStamps;
  runtimeFor: (release: ReleaseSpec) => Runtime;
  /**
   * Fetches what the cache lacks of `release` (disk check first); `full` ignores installed subtrees.
   * `onTreeReady` is called once the tree's objects are in the cache, before the files' contents.
   */
  fetchRelease: (
    release: ReleaseSpec,
    signal: AbortSignal,
    full: boolean,
    onTreeReady?: () => void,
  ) => Promise<FetchOutcome>;
  /** Ids the cache must keep: everything reachable from current and previous releases of every app. */
  protectedIds: () => Promise<Set<string>>;
  keepPrevious: number;
  stageReuse: StageReuse;
  stageVerify: StageVerify;
  /** Staged trees made durable by their commit rather than before the switch (durable.ts). */
  durable: DurableTrees;
  logger: Logger;
}
