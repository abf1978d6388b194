import type { Command } from 'commander';
import { nextRoot } from '@flotilla/node-kit';
import { durationArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { DEFAULT_ROOT_EXPIRES, DEFAULT_TARGETS_EXPIRES, expiresIn } from '../../signing/expiry.js';
import { currentRoot, submitRoot } from '../../signing/image-api.js';
import type { OfflineRole } from '../../signing/keys-dir.js';
import { keyPassphrase } from '../../signing/passphrase.js';
import { loadRoleKeys } from '../../signing/role-keys.js';
import { publishTargets, signWith } from '../../signing/sign.js';
import { keyFileOptions, keysDirOf, offlineRoleArg } from './options.js';
import type { KeyFileOptions } from './options.js';

interface RenewOptions extends KeyFileOptions {
  role: OfflineRole;
  expires?: string;
}

export function registerKeysRenew(parent: Command, io: CliIo): void {
  const cmd = keyFileOptions(
    parent
      .command('renew')
      .description('re-sign root or targets with a new expiry (same keys, next version)'),
  )
    .requiredOption('--role <role>', 'root or targets', offlineRoleArg)
    .option(
      '--expires <duration>',
      `new lifetime from now (default ${DEFAULT_ROOT_EXPIRES} for root, ${DEFAULT_TARGETS_EXPIRES} for targets)`,
      durationArg,
    )
    .action(async (opts: RenewOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const keysDir = keysDirOf(ctx, opts);
      const client = await ctx.client();
      const passphrase = await keyPassphrase(io, opts.passphraseStdin);
      const root = await currentRoot(client);
      const keys = await loadRoleKeys(keysDir, root, opts.role, passphrase);
      const defaultExpiry = opts.role === 'root' ? DEFAULT_ROOT_EXPIRES : DEFAULT_TARGETS_EXPIRES;
      const expires = expiresIn(opts.expires ?? defaultExpiry);
      let result: { role: OfflineRole; version: number; expires: string };
      if (opts.role === 'root') {
        const next = nextRoot(root, {}, expires);
        await signWith(next, keys);
        const response = await submitRoot(client, next);
        result = { role: 'root', version: response.version, expires: next.signed.expires };
      } else {
        const { md, response } = await publishTargets(client, keys, [], expires);
        result = { role: 'targets', version: response.version, expires: md.signed.expires };
      }
      ctx.out.result(result, () =>
        ctx.out.line(`published ${result.role} v${result.version}, expires ${result.expires}`),
      );
    });
  examples(cmd, [
    'flotilla keys renew --role targets',
    'flotilla keys renew --role root --expires 52w --passphrase-stdin < pass.txt',
  ]);
}
