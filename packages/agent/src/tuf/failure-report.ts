/** Turns a refusal from verifyAssignment into what the agent reports to the server. */
import { errorSummary, isFlotillaError } from '@flotilla/protocol';
import type { TufVerificationFailure } from '@flotilla/protocol';

const REPOSITORIES = new Set(['image', 'director']);
const STEPS = new Set(['root', 'timestamp', 'snapshot', 'targets']);

export function tufFailureReport(error: unknown): TufVerificationFailure {
  const report: TufVerificationFailure = errorSummary(error);
  if (!isFlotillaError(error)) return report;
  const details = (
    typeof error.details === 'object' && error.details !== null ? error.details : {}
  ) as Record<string, unknown>;
  if (typeof details.repository === 'string' && REPOSITORIES.has(details.repository))
    report.repository = details.repository as 'image' | 'director';
  if (typeof details.step === 'string' && STEPS.has(details.step))
    report.step = details.step as TufVerificationFailure['step'];
  // The delegated gateway role is a targets role (the report's steps are the top-level ones).
  else if (details.step === 'gateway') report.step = 'targets';
  if (typeof details.path === 'string') report.path = details.path.slice(0, 512);
  return report;
}
