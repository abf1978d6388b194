/**
 * The pure planner: (what is installed, what is assigned, the journal) → steps. No I/O, no clock,
 * so every case, including recovery from each journal state, is unit-tested without processes.
 */
import { releaseId, sameRelease } from '../model/identity.js';
import { recoveryGroup } from '../model/release.js';
import type { FailureReason, InstalledApp, JournalEntry, Plan, ReleaseSpec, Step } from '../model/release.js';

export interface PlanInput {
  app: string;
  installed: InstalledApp;
  /** The verified assignment; null when the director names no release for this app. */
  target: ReleaseSpec | null;
  journal: JournalEntry | null;
  /** Release directories complete on disk (`releases/<root>`, renamed after fsync). */
  stagedRoots: readonly string[];
  /** Previous releases kept for instant rollback (default 1). */
  keepPrevious: number;
  /** After this many agent restarts inside the switch..health window, roll back (default 3). */
  maxAttempts: number;
}

/** The steps that take the app from what is installed to `target`, or finish an interrupted transaction. */
export function planUpdate(input: PlanInput): Plan {
  const { journal, target, installed } = input;
  if (journal !== null) {
    const abandon =
      journal.mode === 'update' &&
      recoveryGroup(journal.mode, journal.step) === 'staging' &&
      target !== null &&
      !sameRelease(target, journal.to);
    if (!abandon) return planRecovery(input, journal);
  }
  const current = installed.current;
  const none = (note: string): Plan => ({
    app: input.app,
    action: 'none',
    mode: null,
    from: current,
    to: target,
    steps: [],
    note,
  });
  if (target === null) return none('no release assigned');
  // A release is its tree, version, runtime and config: a change of any of them is an update (an
  // unchanged tree is neither fetched nor staged again, see forwardSteps).
  if (sameRelease(current, target)) return none('up to date');
  if (isHeld(installed.held, target)) return none(`held after a rollback: ${installed.held?.reason ?? ''}`);
  return {
    app: input.app,
    action: 'update',
    mode: 'update',
    from: current,
    to: target,
    steps: forwardSteps(input, current, target, true),
    note: null,
  };
}

/** The operator's rollback: back to the newest previous release, holding the current one. */
export function planRollback(input: PlanInput, reason: FailureReason): Plan {
  const current = input.installed.current;
  const previous = input.installed.previous.find((p) => input.stagedRoots.includes(p.root)) ?? null;
  if (current === null || previous === null) {
    return {
      app: input.app,
      action: 'none',
      mode: null,
      from: current,
      to: null,
      steps: [],
      note: current === null ? 'not installed' : 'no previous release on disk',
    };
  }
  return rollbackPlan(input, current, previous, reason);
}

/** The rollback after a failed start or health window of `failed`. */
export function planFailureRollback(
  input: PlanInput,
  failed: ReleaseSpec,
  back: ReleaseSpec | null,
  reason: FailureReason,
): Plan {
  return rollbackPlan(input, failed, back, reason);
}

function rollbackPlan(
  input: PlanInput,
  failed: ReleaseSpec,
  back: ReleaseSpec | null,
  reason: FailureReason,
): Plan {
  const steps: Step[] = [
    { kind: 'stop', release: failed },
    { kind: 'switch', release: back },
  ];
  if (back !== null) steps.push({ kind: 'start', release: back });
  steps.push({ kind: 'rollback', release: back, failed, reason });
  steps.push({ kind: 'cleanup', app: input.app, keep: keepAfterRollback(input, back, failed) });
  return {
    app: input.app,
    action: 'rollback',
    mode: 'rollback',
    from: failed,
    to: back,
    steps,
    note: reason.message,
  };
}

function planRecovery(input: PlanInput, journal: JournalEntry): Plan {
  const resumed = (steps: Step[], mode = journal.mode): Plan => ({
    app: input.app,
    action: 'resume',
    mode,
    from: journal.from,
    to: journal.to,
    steps,
    note: `resuming after an interruption at "${journal.step}" (attempt ${journal.attempts + 1})`,
  });
  const group = recoveryGroup(journal.mode, journal.step);
  if (journal.mode === 'rollback') {
    const failed = journal.from;
    const reason = journal.reason ?? { code: 'FLT_RUNTIME_FAILED', message: 'rollback interrupted' };
    if (failed === null) return resumed([]);
    if (group === 'cleanup')
      return resumed([
        { kind: 'cleanup', app: input.app, keep: keepAfterRollback(input, journal.to, failed) },
      ]);
    return { ...rollbackPlan(input, failed, journal.to, reason), action: 'resume' };
  }
  const to = journal.to;
  if (to === null) return resumed([]);
  const from = journal.from;
  if (group === 'starting' && journal.attempts >= input.maxAttempts) {
    return planFailureRollback(input, to, from, {
      code: 'FLT_RUNTIME_FAILED',
      message: `the agent was interrupted ${journal.attempts} times while starting ${to.targetPath}`,
    });
  }
  switch (group) {
    case 'staging':
      return resumed(forwardSteps(input, from, to, true));
    case 'starting':
      return resumed(forwardSteps(input, from, to, false));
    case 'commit':
      return resumed([
        { kind: 'commit', release: to, replaced: from },
        { kind: 'cleanup', app: input.app, keep: keepAfterCommit(input, to, from) },
      ]);
    default:
      return resumed([{ kind: 'cleanup', app: input.app, keep: keepAfterCommit(input, to, from) }]);
  }
}

function forwardSteps(
  input: PlanInput,
  from: ReleaseSpec | null,
  to: ReleaseSpec,
  withStaging: boolean,
): Step[] {
  const steps: Step[] = [];
  if (withStaging && !input.stagedRoots.includes(to.root)) {
    // Staging overlaps the download: it begins once the tree is known (apply/staging.ts).
    steps.push({ kind: 'fetch', release: to, overlapStage: true }, { kind: 'stage', release: to });
  }
  if (from !== null || !withStaging) steps.push({ kind: 'stop', release: from ?? to });
  steps.push(
    { kind: 'switch', release: to },
    { kind: 'start', release: to },
    { kind: 'health', release: to },
    { kind: 'commit', release: to, replaced: from },
    { kind: 'cleanup', app: input.app, keep: keepAfterCommit(input, to, from) },
  );
  return steps;
}

function isHeld(held: InstalledApp['held'], target: ReleaseSpec): boolean {
  if (held === null) return false;
  // A hold an older agent recorded names only the tree.
  return held.id === null ? held.root === target.root : held.id === releaseId(target);
}

/** Release directories to keep: the new release's and those of the previous releases kept. */
function keepAfterCommit(input: PlanInput, to: ReleaseSpec, from: ReleaseSpec | null): string[] {
  const previous = [from, ...input.installed.previous]
    .filter((r): r is ReleaseSpec => r !== null && !sameRelease(r, to))
    .map((r) => r.root);
  return unique([to.root, ...previous.slice(0, input.keepPrevious)]);
}

function keepAfterRollback(input: PlanInput, back: ReleaseSpec | null, failed: ReleaseSpec): string[] {
  const others = input.installed.previous.filter((r) => !sameRelease(r, back)).map((r) => r.root);
  // The failed release stays on disk as a previous one only if there is room; it is held anyway.
  return unique([...(back ? [back.root] : []), ...others.slice(0, input.keepPrevious), failed.root]).slice(
    0,
    1 + input.keepPrevious,
  );
}

function unique(ids: string[]): string[] {
  return [...new Set(ids)];
}
