import type { Command } from 'commander';
import { ApiClient } from '../../api/client.js';
import { revokeToken } from '../../api/operator.js';
import { deleteCredentials, readCredentials } from '../../config/credentials.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

// The token is already unusable: nothing left to revoke.
const DEAD_TOKEN_CODES = new Set([
  'FLT_TOKEN_INVALID',
  'FLT_TOKEN_EXPIRED',
  'FLT_UNAUTHENTICATED',
  'FLT_NOT_FOUND',
]);

export function registerLogout(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('logout')
    .description('revoke the stored API token on the server and delete it locally')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const stored = await readCredentials(ctx.configDir);
      if (!stored) {
        ctx.out.result({ loggedOut: false, revoked: false }, () => ctx.out.note('not logged in'));
        return;
      }
      let revoked = false;
      if (stored.tokenId) {
        try {
          await revokeToken(new ApiClient({ baseUrl: stored.server, token: stored.token }), stored.tokenId);
          revoked = true;
        } catch (error) {
          const code = (error as { code?: string }).code ?? '';
          if (!DEAD_TOKEN_CODES.has(code)) {
            ctx.out.warn(
              `could not revoke token ${stored.tokenId} on ${stored.server} (${(error as Error).message}); ` +
                'revoke it later with `flotilla tokens revoke`',
            );
          }
        }
      } else {
        ctx.out.warn(
          'the stored credentials do not name their token; revoke it with `flotilla tokens revoke`',
        );
      }
      await deleteCredentials(ctx.configDir);
      ctx.out.result({ loggedOut: true, revoked, server: stored.server, username: stored.username }, () =>
        ctx.out.line(`logged out of ${stored.server}${revoked ? ' (token revoked)' : ''}`),
      );
    });
  examples(cmd, ['flotilla logout']);
}
