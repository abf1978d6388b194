import type { EventEmitter } from 'node:events';
import type { Command } from 'commander';

/**
 * The program's `--version` is recognised anywhere on the line and prints the CLI's version with
 * exit 0, so `release push … --version 1.4.0` would silently push nothing. After `release push`
 * it is refused as a usage error that names `--app-version`.
 */
export function refuseVersionFlagOnPush(program: Command): void {
  // Before commander's own listener, which prints and exits; Command is an EventEmitter at runtime.
  (program as unknown as EventEmitter).prependListener('option:version', () => {
    // commander keeps the argv being parsed in rawArgs, which its typings do not declare.
    const argv = (program as Command & { rawArgs?: string[] }).rawArgs ?? [];
    const release = argv.indexOf('release');
    if (release >= 0 && argv[release + 1] === 'push') {
      program.error(
        'error: release push takes the version as --app-version (--version prints the CLI version)',
        {
          exitCode: 2,
          code: 'flotilla.usage',
        },
      );
    }
  });
}
