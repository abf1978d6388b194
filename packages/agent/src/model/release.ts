/**
 * The release model, the agent's bottom layer: releases, what is installed, the journal, and the
 * plan's steps. Types only; every other folder may import it, it imports nothing of the agent.
 */
import type { RuntimeKind } from '@flotilla/protocol';

/** A release as the agent installs it: verified by TUF, named by its root object id. */
export interface ReleaseSpec {
  app: string;
  version: string;
  runtime: RuntimeKind;
  /** Root object id (SHA-256 hex); also the release directory's name. */
  root: string;
  /** TUF target path `<app>/<version>/<root>`. */
  targetPath: string;
  config: Record<string, unknown>;
  /**
   * Secrets the config references: the offline-signed commitment and the value sealed to this
   * device (ciphertext only; opened in memory when the app starts, never stored in plaintext).
   */
  secrets?: Record<string, { commitment: string; sealed: string | null }>;
}

/** What state.db holds as committed for one app. */
export interface InstalledApp {
  current: ReleaseSpec | null;
  /** Newest first. */
  previous: ReleaseSpec[];
  /**
   * A release that failed and was rolled back; not retried until the assignment changes. `id` is
   * its `releaseId` (null for a hold an older agent recorded: then its tree is what is held).
   */
  held: { id: string | null; root: string; reason: string } | null;
}

export type TransactionMode = 'update' | 'rollback';

/** The in-flight transaction of one app, written before each step runs. */
export interface JournalEntry {
  app: string;
  txn: string;
  mode: TransactionMode;
  /** update: the release being replaced; rollback: the release that failed. */
  from: ReleaseSpec | null;
  /** update: the new release; rollback: the release returned to (null: none, a first install failed). */
  to: ReleaseSpec | null;
  /** The step recorded last: it started, and may or may not have finished. */
  step: StepKind;
  /** How many times the agent (re)started this transaction. */
  attempts: number;
  /** Why a rollback runs. */
  reason: FailureReason | null;
  bytesFetched: number;
}

export interface FailureReason {
  code: string;
  message: string;
}

export type Step =
  /**
   * Fetch every object and chunk of the release the cache lacks. With `overlapStage`, staging
   * begins (into `releases/<root>.tmp`) as soon as the tree's objects are in the cache, while the
   * files' contents still arrive; the stage step that follows finishes it.
   */
  | { kind: 'fetch'; release: ReleaseSpec; overlapStage: boolean }
  /** Materialize into `releases/<root>.tmp` (or finish the staging the fetch began), fsync, rename to `releases/<root>`. */
  | { kind: 'stage'; release: ReleaseSpec }
  /** Stop the app, whatever release it runs. */
  | { kind: 'stop'; release: ReleaseSpec }
  /** Point `current` at the release (temp symlink renamed over it); null removes `current`. */
  | { kind: 'switch'; release: ReleaseSpec | null }
  | { kind: 'start'; release: ReleaseSpec }
  /** The health window; a failure turns the transaction into a rollback. */
  | { kind: 'health'; release: ReleaseSpec }
  /** Record the release as current, the one it replaced as previous. */
  | { kind: 'commit'; release: ReleaseSpec; replaced: ReleaseSpec | null }
  /** Record that the app is back on `release` (null: not installed), and hold `failed` with the reason. */
  | { kind: 'rollback'; release: ReleaseSpec | null; failed: ReleaseSpec; reason: FailureReason }
  /** Remove release directories other than `keep`, and cache chunks beyond the cap. */
  | { kind: 'cleanup'; app: string; keep: string[] };

export type StepKind = Step['kind'];

/** Steps that recovery after a crash treats alike (update/planner.ts `planRecovery`). */
export type RecoveryGroup = 'staging' | 'starting' | 'commit' | 'cleanup' | 'rollback';

/**
 * The recovery group of `step` in a transaction of `mode`: an update interrupted at `fetch` or
 * `stage` stages again; at `stop`, `switch`, `start` or `health` it starts again; at `commit` it
 * commits; anywhere else it only cleans up. A rollback starts over unless it was at `cleanup`. The
 * transaction writes the journal only when a step begins a new group.
 */
export function recoveryGroup(mode: TransactionMode, step: StepKind): RecoveryGroup {
  if (mode === 'rollback') return step === 'cleanup' ? 'cleanup' : 'rollback';
  if (step === 'fetch' || step === 'stage') return 'staging';
  if (step === 'stop' || step === 'switch' || step === 'start' || step === 'health') return 'starting';
  return step === 'commit' ? 'commit' : 'cleanup';
}

export interface Plan {
  app: string;
  /** What the plan does: nothing, a fresh update, a resumed one, an (operator or recovery) rollback. */
  action: 'none' | 'update' | 'resume' | 'rollback';
  mode: TransactionMode | null;
  from: ReleaseSpec | null;
  to: ReleaseSpec | null;
  steps: Step[];
  /** Why nothing happens, or why a rollback runs. */
  note: string | null;
}

/**
 * Told the verified releases of an assignment before their root objects are fetched, so that the
 * runtimes may begin what an update needs (`Runtime.expect`); it must not throw.
 */
export type AssignmentAhead = (releases: readonly ReleaseSpec[]) => void;
