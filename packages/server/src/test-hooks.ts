/**
 * Crash points for the tests that kill the server between two steps (docs/architecture.md
 * "Assignments"). Honoured only when NODE_ENV is `test`: with FLOTILLA_TEST_CRASH_AT set to a
 * point's name, the process SIGKILLs itself there, as a power cut or an OOM kill would stop it.
 */
export type CrashPoint =
  'assignment.after-commit' | 'assignment.after-sign' | 'rollout.after-assign' | 'deployment.after-batch';

export function crashPoint(name: CrashPoint): void {
  if (process.env.NODE_ENV !== 'test' || process.env.FLOTILLA_TEST_CRASH_AT !== name) return;
  process.kill(process.pid, 'SIGKILL');
}
