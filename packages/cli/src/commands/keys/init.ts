import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import { newImageRoot } from '@flotilla/node-kit';
import type { LoadedKey } from '@flotilla/node-kit';
import { durationArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { DEFAULT_ROOT_EXPIRES, expiresIn } from '../../signing/expiry.js';
import { onlineKeys, submitRoot, tufStatus } from '../../signing/image-api.js';
import { discardKeys, generateKeys, keyIdsOnDisk, OFFLINE_ROLES } from '../../signing/keys-dir.js';
import { newKeyPassphrase } from '../../signing/passphrase.js';
import { signWith } from '../../signing/sign.js';
import { keyCountArg, keyFileOptions, keysDirOf } from './options.js';
import type { KeyFileOptions } from './options.js';

interface InitOptions extends KeyFileOptions {
  passphrase?: boolean;
  rootKeys?: number;
  threshold?: number;
  expires: string;
}

export function registerKeysInit(parent: Command, io: CliIo): void {
  const cmd = keyFileOptions(
    parent
      .command('init')
      .description(
        'create the offline root and targets keys and register root v1 with the server ' +
          '(which adds its own online snapshot and timestamp keys)',
      ),
  )
    .option('--no-passphrase', 'store the new key files unencrypted (still mode 0600)')
    .option('--root-keys <n>', 'how many root keys to create (default: the threshold)', keyCountArg)
    .option('--threshold <k>', 'how many root keys must sign a new root (default 1)', keyCountArg)
    .option('--expires <duration>', 'lifetime of root v1', durationArg, DEFAULT_ROOT_EXPIRES)
    .action(async (opts: InitOptions, command: Command) => {
      const threshold = opts.threshold ?? 1;
      const rootKeyCount = opts.rootKeys ?? threshold;
      if (threshold > rootKeyCount)
        usageError(command, `--threshold ${threshold} needs at least ${threshold} --root-keys`);
      const ctx = contextFor(io, command);
      const keysDir = keysDirOf(ctx, opts);
      const client = await ctx.client();
      const status = await tufStatus(client);
      if (status.initialized) {
        throw new FlotillaError(
          'FLT_CONFLICT',
          `${client.baseUrl} already has an image root (v${status.root?.version ?? '?'}); keys init runs once: ` +
            'use `flotilla keys rotate` to replace keys',
        );
      }
      for (const role of OFFLINE_ROLES) {
        if ((await keyIdsOnDisk(keysDir, role)).length > 0) {
          throw new FlotillaError(
            'FLT_CONFLICT',
            `${keysDir}/${role}/ already holds keys; keys are never overwritten (choose another --keys-dir)`,
          );
        }
      }
      const passphrase = await newKeyPassphrase(io, opts);
      const online = await onlineKeys(client);
      const rootKeys: LoadedKey[] = [];
      const targetsKeys: LoadedKey[] = [];
      let registered: { version: number; expires: string };
      try {
        rootKeys.push(...(await generateKeys(keysDir, 'root', rootKeyCount, passphrase)));
        targetsKeys.push(...(await generateKeys(keysDir, 'targets', 1, passphrase)));
        const root = newImageRoot({
          rootKeys: rootKeys.map((k) => k.signer.key),
          rootThreshold: threshold,
          targetsKeys: targetsKeys.map((k) => k.signer.key),
          online,
          expires: expiresIn(opts.expires),
        });
        await signWith(root, { keys: rootKeys, threshold });
        registered = { version: (await submitRoot(client, root)).version, expires: root.signed.expires };
      } catch (error) {
        // Keys the server never accepted protect nothing: remove them so that init can run again.
        await discardKeys(keysDir, 'root', rootKeys);
        await discardKeys(keysDir, 'targets', targetsKeys);
        throw error;
      }
      const result = {
        keysDir,
        encrypted: passphrase !== undefined,
        root: { ...registered, threshold },
        keys: { root: rootKeys.map((k) => k.keyId), targets: targetsKeys.map((k) => k.keyId) },
      };
      ctx.out.result(result, () => {
        ctx.out.line(`registered root v${registered.version} with ${client.baseUrl}`);
        ctx.out.fields([
          ['keys dir', keysDir],
          ['encrypted', result.encrypted ? 'yes' : 'no'],
          ['root keys', `${result.keys.root.join(', ')} (threshold ${threshold})`],
          ['targets key', result.keys.targets.join(', ')],
          ['root expires', registered.expires],
        ]);
        ctx.out.warn(`back up ${keysDir} offline: without these keys no new release can be signed`);
      });
    });
  examples(cmd, [
    'echo "$PASSPHRASE" | flotilla keys init --passphrase-stdin',
    'FLOTILLA_KEY_PASSPHRASE=… flotilla keys init --keys-dir /media/usb/flotilla-keys',
    'flotilla keys init --root-keys 3 --threshold 2 --expires 104w --passphrase-stdin < pass.txt',
    'flotilla keys init --no-passphrase   # unencrypted key files, for a test setup',
  ]);
}
