import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import type { CommandContext } from '../../context.js';
import { resolveKeysDir } from '../../signing/keys-dir.js';
import type { OfflineRole } from '../../signing/keys-dir.js';
import { PASSPHRASE_ENV } from '../../signing/passphrase.js';

export interface KeyFileOptions {
  keysDir?: string;
  passphraseStdin?: boolean;
}

/** `--keys-dir` and `--passphrase-stdin`, shared by every command that reads offline keys. */
export function keyFileOptions(cmd: Command): Command {
  return cmd
    .option('--keys-dir <dir>', 'where the offline keys are (default: <config-dir>/keys)')
    .option('--passphrase-stdin', `read the key passphrase from stdin (default: $${PASSPHRASE_ENV})`);
}

export function keysDirOf(ctx: CommandContext, opts: KeyFileOptions): string {
  return resolveKeysDir(opts.keysDir, ctx.configDir, ctx.io.cwd);
}

export function offlineRoleArg(value: string): OfflineRole {
  if (value === 'root' || value === 'targets') return value;
  throw new InvalidArgumentError('must be root or targets');
}

export function keyCountArg(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('must be an integer from 1 to 16');
  const n = Number(value);
  if (n < 1 || n > 16) throw new InvalidArgumentError('must be an integer from 1 to 16');
  return n;
}
