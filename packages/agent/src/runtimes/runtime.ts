/** One interface for every way an app runs; the transaction code does not know which one it drives. */
import type { AppProcessStatus, RuntimeKind } from '@flotilla/protocol';
import type { ReleaseSpec } from '../model/release.js';

/** Where one app's release lives on disk (docs/updates.md "Disk layout"). */
export interface AppContext {
  app: string;
  release: ReleaseSpec;
  /** `<data-dir>/apps/<app>` */
  appDir: string;
  /** `<data-dir>/apps/<app>/releases/<root>`: the real directory, stable while it runs. */
  releaseDir: string;
  /** `<data-dir>/apps/<app>/current`, the symlink the switch renames. */
  currentLink: string;
  /** `<data-dir>/apps/<app>/data`, kept across releases. */
  dataDir: string;
  /** `<data-dir>/apps/<app>/logs` */
  logDir: string;
}

export interface Runtime {
  readonly kind: RuntimeKind;
  /** Checks the release's `config` for this runtime; FLT_VALIDATION listing the problems. */
  validate(release: ReleaseSpec): void;
  start(ctx: AppContext, signal: AbortSignal): Promise<void>;
  /** Brings a committed release back up when the agent starts (no update ran). */
  adopt(ctx: AppContext): Promise<void>;
  /** Stops whatever runs for the app, including what a previous agent process left running. Idempotent. */
  stop(app: string, appDir: string): Promise<void>;
  /** The health window; resolves when healthy, throws FLT_HEALTH_CHECK_FAILED with the reason. */
  health(ctx: AppContext, signal: AbortSignal): Promise<void>;
  /** Stops everything this runtime started (agent shutdown). */
  close(): Promise<void>;
  /** How the app's process stands, for runtimes that supervise one (null: not running here). */
  status?(app: string): AppProcessStatus | null;
}
