/** The `flotilla` process's exit codes (docs/cli.md "Exit codes"). */
export const ExitCode = {
  ok: 0,
  /** The operation failed: the server refused it, the network failed, the config is invalid. */
  failure: 1,
  /** The command line itself is wrong: unknown command or option, missing or malformed argument. */
  usage: 2,
  /** Stopped by a second signal while a graceful stop was in progress. */
  interrupted: 130,
} as const;

/** Ends a command with this exit code without an error message (e.g. `devices exec` passes on the remote command's). */
export class ExitWith extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}
