/**
 * Runs a plan as a transaction: each step is written to the journal in state.db before it runs, so
 * recovery knows where a crash struck. A failure before the switch abandons the update (the running
 * release never stopped being current); a failure at or after it ends the run with a `rollback`
 * outcome naming the failed release: the engine plans the rollback and runs it (plan → execute;
 * the transaction never plans).
 */
import { randomUUID } from 'node:crypto';
import { FlotillaError, errorSummary } from '@flotilla/protocol';
import type { UpdatePhase } from '@flotilla/protocol';
import type { MaterializeStats } from '@flotilla/store';
import { recoveryGroup } from '../model/release.js';
import type {
  FailureReason,
  JournalEntry,
  Plan,
  RecoveryGroup,
  ReleaseSpec,
  Step,
} from '../model/release.js';
import type { ApplyContext } from './context.js';
import { executeStep } from './executors.js';

export interface PhaseEvent {
  app: string;
  targetPath: string;
  phase: UpdatePhase;
  bytesFetched?: number;
  error?: FailureReason;
  /** On a final phase: the target path the app runs now (null: none); absent when unknown. */
  running?: string | null;
}

export type TransactionOutcome =
  | { kind: 'none' }
  | { kind: 'committed'; bytesFetched: number }
  | { kind: 'rolled-back'; reason: FailureReason }
  | { kind: 'failed'; reason: FailureReason };

/**
 * What one run of a plan ends with: an outcome, or (an update failing at or after the switch) the
 * rollback the engine must plan and run next: `failed` back to `back` for `reason`.
 */
export type TransactionResult =
  | TransactionOutcome
  | { kind: 'rollback'; reason: FailureReason; failed: ReleaseSpec; back: ReleaseSpec | null };

const PHASE_OF: Partial<Record<Step['kind'], UpdatePhase>> = {
  fetch: 'downloading',
  stage: 'installing',
  stop: 'stopping',
  switch: 'switching',
  start: 'starting',
  health: 'health',
};
const BEFORE_SWITCH = new Set<Step['kind']>(['fetch', 'stage']);

export function failureReason(error: unknown): FailureReason {
  return errorSummary(error);
}

/** Runs `plan`; `previous` is the journal entry of the interrupted transaction it resumes, if any. */
export async function runTransaction(
  plan: Plan,
  previous: JournalEntry | null,
  ctx: ApplyContext,
  signal: AbortSignal,
  onPhase: (event: PhaseEvent) => void,
): Promise<TransactionResult> {
  if (plan.steps.length === 0 || plan.mode === null) return { kind: 'none' };
  const entry: JournalEntry = {
    app: plan.app,
    txn: plan.action === 'resume' && previous ? previous.txn : randomUUID(),
    mode: plan.mode,
    from: plan.from,
    to: plan.to,
    step: plan.steps[0]!.kind,
    attempts: plan.action === 'resume' && previous ? previous.attempts + 1 : 0,
    reason: plan.mode === 'rollback' ? reasonOf(plan) : null,
    bytesFetched: plan.action === 'resume' && previous ? previous.bytesFetched : 0,
  };
  const subject = plan.mode === 'update' ? plan.to : plan.from;
  const targetPath = subject?.targetPath ?? '';
  // The staging a fetch step began (overlapStage), handed to the stage step right after it.
  let begun: Promise<MaterializeStats> | undefined;
  // The journal is written when a step begins a new recovery group, not at every step: each write
  // is a synchronous fsync of state.db on the event loop, and under an update's disk load one took
  // up to 150 ms, stalling the image stream to the engine beside it.
  let written: RecoveryGroup | null = null;
  for (const step of plan.steps) {
    const group = recoveryGroup(plan.mode, step.kind);
    if (group !== written) {
      entry.step = step.kind;
      ctx.records.writeJournal(entry);
      written = group;
    }
    const phase = plan.mode === 'update' ? PHASE_OF[step.kind] : undefined;
    if (phase) onPhase({ app: plan.app, targetPath, phase });
    const handed = begun;
    begun = undefined;
    try {
      const result = await executeStep(step, ctx, signal, handed);
      entry.bytesFetched += result.wireBytes;
      begun = result.staging;
    } catch (error) {
      const reason = failureReason(error);
      ctx.logger.error({ err: error, app: plan.app, step: step.kind }, 'update step failed');
      if (plan.mode === 'rollback' || step.kind === 'commit') {
        // The journal stays: the next pass (or the next agent start) resumes from this step.
        onPhase({ app: plan.app, targetPath, phase: 'failed', error: reason });
        return { kind: 'failed', reason };
      }
      // The docker runtime's stop step changes nothing; it fails only when the engine does not answer.
      const nothingChanged =
        step.kind === 'stop' && error instanceof FlotillaError && error.code === 'FLT_ENGINE_UNAVAILABLE';
      if (BEFORE_SWITCH.has(step.kind) || nothingChanged) {
        ctx.records.clearJournal(plan.app);
        onPhase({
          app: plan.app,
          targetPath,
          phase: 'failed',
          error: reason,
          bytesFetched: entry.bytesFetched,
          running: plan.from?.targetPath ?? null,
        });
        return { kind: 'failed', reason };
      }
      if (step.kind === 'cleanup') break;
      const to = plan.to;
      if (to === null) return { kind: 'failed', reason };
      return { kind: 'rollback', reason, failed: to, back: plan.from };
    }
  }
  await begun?.catch(() => undefined); // a plan that ends with its fetch step (none does today)
  ctx.records.clearJournal(plan.app);
  if (plan.mode === 'update') {
    onPhase({
      app: plan.app,
      targetPath,
      phase: 'committed',
      bytesFetched: entry.bytesFetched,
      running: plan.to?.targetPath ?? null,
    });
    return { kind: 'committed', bytesFetched: entry.bytesFetched };
  }
  const reason = reasonOf(plan);
  // The release returned to (an operator's rollback or an automatic one) is what runs now.
  onPhase({
    app: plan.app,
    targetPath,
    phase: 'rolled-back',
    error: reason,
    running: plan.to?.targetPath ?? null,
  });
  return { kind: 'rolled-back', reason };
}

function reasonOf(plan: Plan): FailureReason {
  const step = plan.steps.find((s): s is Extract<Step, { kind: 'rollback' }> => s.kind === 'rollback');
  return step?.reason ?? { code: 'FLT_RUNTIME_FAILED', message: plan.note ?? 'rolled back' };
}
