import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import {
  gatewayPathPattern,
  readGatewayDelegation,
  tufKeyFromPublicKey,
  withGatewayDelegation,
} from '@flotilla/node-kit';
import { durationArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { DEFAULT_TARGETS_EXPIRES, expiresIn } from '../../signing/expiry.js';
import { currentRoot, currentTargets, onlineKeys, submitTargets } from '../../signing/image-api.js';
import { keyPassphrase } from '../../signing/passphrase.js';
import { loadRoleKeys } from '../../signing/role-keys.js';
import { signWith } from '../../signing/sign.js';
import { keyFileOptions, keysDirOf } from './options.js';
import type { KeyFileOptions } from './options.js';

interface DelegateOptions extends KeyFileOptions {
  app: string[];
  remove: string[];
  none?: boolean;
  expires: string;
}

const collect = (value: string, previous: string[]): string[] => {
  gatewayPathPattern(value); // FLT_VALIDATION for a name that is not an app name
  return [...previous, value];
};

export function registerKeysDelegateGateway(parent: Command, io: CliIo): void {
  const cmd = keyFileOptions(
    parent
      .command('delegate-gateway')
      .description(
        "delegate apps to the server's online gateway role (TUF delegated targets): the server may then " +
          "sign releases of those apps itself (the image gateway's fleet platforms), and of no other app. " +
          "Publishes targets v(N+1), signed with the offline targets keys, naming the server's current " +
          'gateway key; run it again after that key changes',
      ),
  )
    .option('--app <app>', 'an app to delegate (repeatable; added to those already delegated)', collect, [])
    .option('--remove <app>', 'an app no longer delegated (repeatable)', collect, [])
    .option('--none', 'remove the delegation altogether')
    .option(
      '--expires <duration>',
      `lifetime of the new targets (default ${DEFAULT_TARGETS_EXPIRES})`,
      durationArg,
      DEFAULT_TARGETS_EXPIRES,
    )
    .action(async (opts: DelegateOptions, command: Command) => {
      if (opts.none && (opts.app.length > 0 || opts.remove.length > 0))
        usageError(command, '--none cannot be combined with --app or --remove');
      const ctx = contextFor(io, command);
      const keysDir = keysDirOf(ctx, opts);
      const client = await ctx.client();
      const online = await onlineKeys(client);
      if (online.gateway === undefined)
        throw new FlotillaError(
          'FLT_TUF_NOT_DELEGATED',
          `${client.baseUrl} has no online gateway key (a server older than gateway delegation)`,
        );
      const key = tufKeyFromPublicKey(online.gateway);
      const passphrase = await keyPassphrase(io, opts.passphraseStdin);
      const root = await currentRoot(client);
      const keys = await loadRoleKeys(keysDir, root, 'targets', passphrase);
      const current = await currentTargets(client);
      const before = current ? (readGatewayDelegation(current.signed)?.apps ?? []) : [];
      const apps = opts.none
        ? []
        : [...new Set([...before, ...opts.app])].filter((a) => !opts.remove.includes(a)).sort();
      const md = withGatewayDelegation(current, key, apps, expiresIn(opts.expires));
      await signWith(md, keys);
      const response = await submitTargets(client, md);
      const result = {
        role: 'targets' as const,
        version: response.version,
        expires: md.signed.expires,
        gatewayKey: key.keyID,
        apps,
      };
      ctx.out.result(result, () =>
        ctx.out.line(
          apps.length === 0
            ? `published targets v${result.version}: no app is delegated to the gateway role`
            : `published targets v${result.version}: ${apps.join(', ')} delegated to the gateway role ` +
                `(key ${key.keyID.slice(0, 16)}…), expires ${result.expires}`,
        ),
      );
    });
  examples(cmd, [
    'flotilla keys delegate-gateway --app cluster-images',
    'flotilla keys delegate-gateway --remove cluster-images --passphrase-stdin < pass.txt',
    "flotilla keys delegate-gateway   # after the server's gateway key changed: same apps, new key",
    'flotilla keys delegate-gateway --none',
  ]);
}
