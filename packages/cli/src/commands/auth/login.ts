import type { Command } from 'commander';
import { ApiClient } from '../../api/client.js';
import { createToken, login, logoutSession, revokeToken } from '../../api/operator.js';
import { readCredentials, writeCredentials } from '../../config/credentials.js';
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
      const previous = await readCredentials(ctx.configDir);
      const server = ctx.explicitServer() ?? previous?.server;
      if (!server) usageError(command, 'which server? pass --server URL');
      const password = await readSecretFromStdin(io.stdin);

      const anonymous = new ApiClient({ baseUrl: server });
      const session = await login(anonymous, opts.user, password);
      const viaSession = anonymous.with({ cookie: session.cookie });
      let created;
      try {
        created = await createToken(viaSession, { name: `cli@${io.hostname}` });
      } finally {
        // The session only existed to mint the token; end it whatever happened.
        await logoutSession(viaSession).catch(() => undefined);
      }
      if (previous?.tokenId && previous.server === server && previous.tokenId !== created.token.id) {
        // Replace rather than accumulate: the old token of this machine is no longer needed.
        await revokeToken(anonymous.with({ token: created.secret }), previous.tokenId).catch(() => undefined);
      }
      const path = await writeCredentials(ctx.configDir, {
        server,
        token: created.secret,
        username: session.user.username,
        tokenId: created.token.id,
      });
      ctx.out.result(
        {
          server,
          username: session.user.username,
          role: session.user.role,
          tokenId: created.token.id,
          credentials: path,
        },
        () => {
          ctx.out.line(`logged in to ${server} as ${session.user.username} (${session.user.role})`);
          ctx.out.note(`API token "${created.token.name}" saved to ${path}`);
        },
      );
    });
  examples(cmd, [
    'echo "$PASSWORD" | flotilla login --server http://127.0.0.1:7070 --user admin --password-stdin',
    'flotilla login --user alice --password-stdin < ~/.flotilla-password',
  ]);
}
