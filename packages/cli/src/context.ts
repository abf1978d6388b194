/**
 * What every command action receives: the io, the global options (`--server`, `--json`,
 * `--config-dir`) resolved once, a printer, and an authenticated API client on demand.
 */
import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import { ApiClient } from './api/client.js';
import { normalizeServerUrl } from './api/server-url.js';
import { resolveConfigDir } from './config/paths.js';
import { readCredentials } from './config/credentials.js';
import type { CliIo } from './io.js';
import { Printer } from './output/printer.js';

export interface GlobalOptions {
  server?: string;
  json?: boolean;
  configDir?: string;
}

export class CommandContext {
  readonly configDir: string;
  readonly out: Printer;

  constructor(
    readonly io: CliIo,
    readonly globals: GlobalOptions,
  ) {
    this.configDir = resolveConfigDir({ flag: globals.configDir, env: io.env, cwd: io.cwd });
    this.out = new Printer(io.stdout, io.stderr, globals.json === true);
  }

  /** The server chosen by `--server`, else `$FLOTILLA_SERVER`; undefined when neither is given. */
  explicitServer(): string | undefined {
    if (this.globals.server) return this.globals.server;
    const fromEnv = this.io.env.FLOTILLA_SERVER;
    if (!fromEnv) return undefined;
    try {
      return normalizeServerUrl(fromEnv);
    } catch (cause) {
      throw new FlotillaError('FLT_CONFIG_INVALID', `FLOTILLA_SERVER: ${(cause as Error).message}`, {
        cause,
      });
    }
  }

  /**
   * A client authenticated with `$FLOTILLA_TOKEN` or the stored credentials. The stored token is
   * only ever sent to the server it was issued by, never to another `--server`.
   */
  async client(): Promise<ApiClient> {
    const stored = await readCredentials(this.configDir);
    const server = this.explicitServer() ?? stored?.server;
    if (!server) {
      throw new FlotillaError(
        'FLT_UNAUTHENTICATED',
        'not logged in: run `flotilla login --server URL --user NAME --password-stdin`',
      );
    }
    const token =
      this.io.env.FLOTILLA_TOKEN || (stored && sameServer(stored.server, server) ? stored.token : undefined);
    if (!token) {
      throw new FlotillaError(
        'FLT_UNAUTHENTICATED',
        `not logged in to ${server}: run \`flotilla login --server ${server}\``,
      );
    }
    return new ApiClient({ baseUrl: server, token });
  }
}

function sameServer(a: string, b: string): boolean {
  try {
    return normalizeServerUrl(a) === normalizeServerUrl(b);
  } catch {
    return false;
  }
}

/** The context for the command whose action is running (its options merged with the globals). */
export function contextFor(io: CliIo, command: Command): CommandContext {
  return new CommandContext(io, command.optsWithGlobals<GlobalOptions>());
}
