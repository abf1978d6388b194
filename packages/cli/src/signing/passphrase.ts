import { FlotillaError } from '@flotilla/protocol';
import type { CliIo } from '../io.js';
import { readSecretFromStdin } from '../stdin.js';

export const PASSPHRASE_ENV = 'FLOTILLA_KEY_PASSPHRASE';

/**
 * The passphrase of the offline key files: piped on stdin with `--passphrase-stdin`, else
 * `$FLOTILLA_KEY_PASSPHRASE`, else none (plain key files load without one; encrypted ones then
 * fail with FLT_KEY_PASSPHRASE_REQUIRED).
 */
export async function keyPassphrase(io: CliIo, fromStdin: boolean | undefined): Promise<string | undefined> {
  if (fromStdin === true) return readSecretFromStdin(io.stdin, 'key passphrase');
  const fromEnv = io.env[PASSPHRASE_ENV];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/**
 * The passphrase new key files are encrypted with. Storing keys unencrypted must be asked for
 * (`--no-passphrase`); giving a passphrase and `--no-passphrase` together is a contradiction.
 */
export async function newKeyPassphrase(
  io: CliIo,
  opts: { passphraseStdin?: boolean; passphrase?: boolean },
): Promise<string | undefined> {
  const plain = opts.passphrase === false;
  if (plain && opts.passphraseStdin === true) {
    throw new FlotillaError('FLT_VALIDATION', '--no-passphrase and --passphrase-stdin contradict each other');
  }
  if (plain) return undefined;
  const passphrase = await keyPassphrase(io, opts.passphraseStdin);
  if (passphrase === undefined) {
    throw new FlotillaError(
      'FLT_KEY_PASSPHRASE_REQUIRED',
      `new key files need a passphrase: pipe one with --passphrase-stdin, set ${PASSPHRASE_ENV}, ` +
        'or store them unencrypted with --no-passphrase',
    );
  }
  return passphrase;
}
