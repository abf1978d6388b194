import type { Command } from 'commander';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { nextRoot, signMetadata } from '@flotilla/node-kit';
import { durationArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { DEFAULT_ROOT_EXPIRES, DEFAULT_TARGETS_EXPIRES, expiresIn } from '../../signing/expiry.js';
import { currentRoot, currentTargets, submitRoot } from '../../signing/image-api.js';
import { discardKeys, generateKeys } from '../../signing/keys-dir.js';
import type { OfflineRole } from '../../signing/keys-dir.js';
import { newKeyPassphrase } from '../../signing/passphrase.js';
import { loadRoleKeys } from '../../signing/role-keys.js';
import { publishTargets } from '../../signing/sign.js';
import { keyCountArg, keyFileOptions, keysDirOf, offlineRoleArg } from './options.js';
import type { KeyFileOptions } from './options.js';

interface RotateOptions extends KeyFileOptions {
  role: OfflineRole;
  keys?: number;
  threshold?: number;
  passphrase?: boolean;
  expires: string;
  targetsExpires: string;
}

export function registerKeysRotate(parent: Command, io: CliIo): void {
  const cmd = keyFileOptions(
    parent
      .command('rotate')
      .description(
        'replace the root or targets keys: publishes root v(N+1) signed by the old and the new root keys ' +
          '(and, for targets, re-signs the current targets with the new keys)',
      ),
  )
    .requiredOption('--role <role>', 'root or targets', offlineRoleArg)
    .option('--keys <n>', 'how many new keys to create (default: the threshold)', keyCountArg)
    .option('--threshold <k>', 'how many of the new keys must sign (default 1)', keyCountArg)
    .option('--no-passphrase', 'store the new key files unencrypted (still mode 0600)')
    .option('--expires <duration>', 'lifetime of the new root', durationArg, DEFAULT_ROOT_EXPIRES)
    .option(
      '--targets-expires <duration>',
      'lifetime of the re-signed targets (--role targets)',
      durationArg,
      DEFAULT_TARGETS_EXPIRES,
    )
    .action(async (opts: RotateOptions, command: Command) => {
      const threshold = opts.threshold ?? 1;
      const count = opts.keys ?? threshold;
      if (threshold > count)
        usageError(command, `--threshold ${threshold} needs at least ${threshold} --keys`);
      const ctx = contextFor(io, command);
      const keysDir = keysDirOf(ctx, opts);
      const client = await ctx.client();
      const passphrase = await newKeyPassphrase(io, opts);
      const root = await currentRoot(client);
      // Load everything needed before creating anything, so a wrong passphrase changes nothing.
      const oldRootKeys = await loadRoleKeys(keysDir, root, 'root', passphrase);
      const fresh = await generateKeys(keysDir, opts.role, count, passphrase);
      try {
        const next = nextRoot(
          root,
          { [opts.role]: { keys: fresh.map((k) => k.signer.key), threshold } },
          expiresIn(opts.expires),
        );
        const signers = oldRootKeys.keys.slice(0, oldRootKeys.threshold).map((k) => k.signer);
        if (opts.role === 'root') signers.push(...fresh.slice(0, threshold).map((k) => k.signer));
        await signMetadata(next, signers);
        await submitRoot(client, next);
      } catch (error) {
        await discardKeys(keysDir, opts.role, fresh);
        throw error;
      }
      // Targets signed by the retired keys no longer verify under the new root: re-sign them now.
      let targetsVersion: number | undefined;
      if (opts.role === 'targets' && (await currentTargets(client)) !== undefined) {
        try {
          const { response } = await publishTargets(
            client,
            { keys: fresh, threshold },
            [],
            expiresIn(opts.targetsExpires),
          );
          targetsVersion = response.version;
        } catch (error) {
          if (!isFlotillaError(error)) throw error;
          throw new FlotillaError(
            error.code,
            `root v${root.signed.version + 1} names the new targets keys, but re-signing targets failed ` +
              `(${error.message}); run \`flotilla keys renew --role targets\``,
            { cause: error, details: error.details },
          );
        }
      }
      const result = {
        role: opts.role,
        rootVersion: root.signed.version + 1,
        ...(targetsVersion !== undefined && { targetsVersion }),
        threshold,
        keys: fresh.map((k) => k.keyId),
        keysDir,
      };
      ctx.out.result(result, () => {
        ctx.out.line(
          `published root v${result.rootVersion}: ${opts.role} is now held by ${result.keys.join(', ')} ` +
            `(threshold ${threshold})`,
        );
        if (targetsVersion !== undefined)
          ctx.out.line(`re-signed targets v${targetsVersion} with the new targets keys`);
        ctx.out.note(
          `the retired ${opts.role} key files stay in ${keysDir}/${opts.role}/ until you remove them`,
        );
      });
    });
  examples(cmd, [
    'flotilla keys rotate --role targets --passphrase-stdin < pass.txt',
    'flotilla keys rotate --role root --keys 3 --threshold 2',
  ]);
}
