import type { Command } from 'commander';
import { ApiClient } from '../../api/client.js';
import { revokeToken } from '../../api/operator.js';
import { loginWithPassword } from '../../auth/password-login.js';
import { readCredentials } from '../../config/credentials.js';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { readSecretFromStdin } from '../../stdin.js';

export function registerLogin(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('login')
    .description('log in with a password and store an API token (never the password)')
    .requiredOption('--user <name>', 'your username')
    .option(
      '--password-stdin',
      'read the password from stdin (required: passwords never go on the command line)',
    )
    .action(async (opts: { user: string; passwordStdin?: boolean }, command: Command) => {
      const ctx = contextFor(io, command);
      if (!opts.passwordStdin) usageError(command, 'pass the password on stdin with --password-stdin');
      const previous = await readCredentials(ctx.configDir).catch(() => null);
      const server = ctx.explicitServer() ?? previous?.server;
      if (!server) usageError(command, 'which server? pass --server URL');
      const password = await readSecretFromStdin(io.stdin);

      const result = await loginWithPassword({
        server,
        username: opts.user,
        password,
        configDir: ctx.configDir,
        hostname: io.hostname,
      });
      const { credentials, user } = result;
      if (previous?.tokenId && previous.server === server && previous.tokenId !== credentials.tokenId) {
        // Replace rather than accumulate: this machine's previous token is no longer needed.
        const client = new ApiClient({ baseUrl: server, token: credentials.token });
        await revokeToken(client, previous.tokenId).catch(() => undefined);
      }
      ctx.out.result(
        {
          server,
          username: user.username,
          role: user.role,
          tokenId: credentials.tokenId,
          credentials: result.path,
        },
        () => {
          ctx.out.line(`logged in to ${server} as ${user.username} (${user.role})`);
          ctx.out.note(`API token "${result.tokenName}" saved to ${result.path}`);
        },
      );
    });
  examples(cmd, [
    'echo "$PASSWORD" | flotilla login --server http://127.0.0.1:7070 --user admin --password-stdin',
    'flotilla login --user alice --password-stdin < ~/.flotilla-password',
  ]);
}
