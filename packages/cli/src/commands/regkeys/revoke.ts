import type { Command } from 'commander';
import { revokeRegistrationKey } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

export function registerRegkeyRevoke(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('revoke')
    .description('revoke a registration key: no device can enroll with it any more')
    .argument('<id>', 'the key id (see `flotilla regkeys ls`)')
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const key = await revokeRegistrationKey(await ctx.client(), id);
      ctx.out.result(key, () => ctx.out.line(`revoked registration key ${key.id} (${key.name})`));
    });
  examples(cmd, ['flotilla regkeys revoke rk_0123abcd']);
}
