/** Turns a refusal from verifyAssignment into what the agent reports to the server. */
import { isFlotillaError } from '@flotilla/protocol';
import type { TufVerificationFailure } from '@flotilla/protocol';

const REPOSITORIES = new Set(['image', 'director']);
const STEPS = new Set(['root', 'timestamp', 'snapshot', 'targets']);

export function tufFailureReport(error: unknown): TufVerificationFailure {
  if (!isFlotillaError(error))
    return {
      code: 'FLT_INTERNAL',
      message: (error instanceof Error ? error.message : String(error)).slice(0, 2048),
    };
  const details = (
    typeof error.details === 'object' && error.details !== null ? error.details : {}
  ) as Record<string, unknown>;
  const report: TufVerificationFailure = { code: error.code, message: error.message.slice(0, 2048) };
  if (typeof details.repository === 'string' && REPOSITORIES.has(details.repository))
    report.repository = details.repository as 'image' | 'director';
  if (typeof details.step === 'string' && STEPS.has(details.step))
    report.step = details.step as TufVerificationFailure['step'];
  if (typeof details.path === 'string') report.path = details.path.slice(0, 512);
  return report;
}
