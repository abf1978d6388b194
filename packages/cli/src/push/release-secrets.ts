/**
 * Secrets of a release (docs/cli.md "Secrets"): where each value comes from, and what is signed.
 *
 * In the config file a secret stands where a string would, as `{ "$secret": "NAME" }` (today: the
 * values of `process.env`). Its value is given on the command line by reference only, never
 * literally (a literal would sit in the shell history and in `ps`):
 *
 *   --secret NAME=@FILE   the file's content (one trailing newline removed)
 *   --secret NAME=-       stdin (one trailing newline removed; one secret at most)
 *   --secret-env NAME[=VAR]  the CLI's environment variable VAR (default NAME)
 *
 * A secret given on the command line that the config does not reference becomes the process
 * runtime's environment variable of the same name. Each secret gets a random 32-byte nonce; only
 * its commitment is signed with the offline targets key, and value and nonce go to the server.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  FlotillaError,
  MAX_SECRET_BYTES,
  SECRET_NAME_PATTERN,
  checkSecretDeclarations,
  secretReferences,
} from '@flotilla/protocol';
import { secretCommitment, secretNonce } from '@flotilla/node-kit';
import type { RuntimeKind, SecretOpening } from '@flotilla/protocol';
import { readSecretFromStdin } from '../stdin.js';

export interface SecretSources {
  cwd: string;
  runtime: RuntimeKind;
  /** `--secret NAME=@FILE|-`, as given. */
  secret: readonly string[];
  /** `--secret-env NAME[=VAR]`, as given. */
  secretEnv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  stdin: AsyncIterable<Buffer | string>;
  /** True when stdin already carries the key passphrase (`--passphrase-stdin`). */
  stdinTaken: boolean;
}

export interface ReleaseSecrets {
  /** The config, with a `{ "$secret": NAME }` env entry for each secret it did not reference. */
  config: Record<string, unknown> | undefined;
  /** Signed: name → commitment. */
  commitments: Record<string, string>;
  /** Sent to the server only: name → value and nonce. */
  openings: Record<string, SecretOpening>;
}

const NAME = new RegExp(SECRET_NAME_PATTERN);

function checkName(name: string, flag: string): string {
  if (!NAME.test(name))
    throw new FlotillaError(
      'FLT_VALIDATION',
      `${flag}: "${name}" is not a secret name (letters, digits and _, not starting with a digit)`,
    );
  return name;
}

/** Reads every secret's value, adds missing env references, and commits to each value. */
export async function releaseSecrets(
  config: Record<string, unknown> | undefined,
  src: SecretSources,
): Promise<ReleaseSecrets> {
  const values = new Map<string, string>();
  const add = (name: string, value: string, flag: string) => {
    if (values.has(name)) throw new FlotillaError('FLT_VALIDATION', `${flag}: secret ${name} is given twice`);
    if (Buffer.byteLength(value) > MAX_SECRET_BYTES)
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `secret ${name} is larger than ${MAX_SECRET_BYTES} bytes`,
      );
    values.set(name, value);
  };
  let stdinUsed = src.stdinTaken;
  for (const arg of src.secret) {
    const eq = arg.indexOf('=');
    if (eq < 1) throw new FlotillaError('FLT_VALIDATION', `--secret ${arg}: expected NAME=@FILE or NAME=-`);
    const name = checkName(arg.slice(0, eq), '--secret');
    const source = arg.slice(eq + 1);
    if (source === '-') {
      if (stdinUsed)
        throw new FlotillaError(
          'FLT_VALIDATION',
          `--secret ${name}=-: stdin is already used (by another secret or --passphrase-stdin); use NAME=@FILE or --secret-env`,
        );
      stdinUsed = true;
      add(name, await readSecretFromStdin(src.stdin, `secret ${name}`, MAX_SECRET_BYTES), '--secret');
    } else if (source.startsWith('@') && source.length > 1) {
      const path = resolve(src.cwd, source.slice(1));
      const text = await readFile(path, 'utf8').catch((cause: unknown) => {
        const code = (cause as NodeJS.ErrnoException).code;
        throw new FlotillaError(
          code === 'ENOENT' ? 'FLT_NOT_FOUND' : 'FLT_IO',
          `--secret ${name}: cannot read ${path}`,
          { cause },
        );
      });
      add(name, text.replace(/\r?\n$/, ''), '--secret');
    } else {
      throw new FlotillaError(
        'FLT_VALIDATION',
        `--secret ${name}: give the value as @FILE, - (stdin) or with --secret-env, never literally (it would show in the shell history and in ps)`,
      );
    }
  }
  for (const arg of src.secretEnv) {
    const eq = arg.indexOf('=');
    const name = checkName(eq < 0 ? arg : arg.slice(0, eq), '--secret-env');
    const variable = eq < 0 ? name : arg.slice(eq + 1);
    const value = src.env[variable];
    if (value === undefined)
      throw new FlotillaError(
        'FLT_VALIDATION',
        `--secret-env ${name}: environment variable ${variable} is not set`,
      );
    add(name, value, '--secret-env');
  }

  let out = config;
  const referenced = secretReferences(config ?? {});
  if (src.runtime !== 'process' && (values.size > 0 || referenced.length > 0))
    throw new FlotillaError(
      'FLT_VALIDATION',
      'secrets are values of the process runtime\'s environment (--runtime process, "env": {"NAME": {"$secret": "NAME"}})',
    );
  const unreferenced = [...values.keys()].filter((n) => !referenced.includes(n));
  if (unreferenced.length > 0) {
    const section = (out?.process ?? {}) as Record<string, unknown>;
    const env = { ...((section.env ?? {}) as Record<string, unknown>) };
    for (const name of unreferenced) {
      if (Object.prototype.hasOwnProperty.call(env, name))
        throw new FlotillaError(
          'FLT_VALIDATION',
          `secret ${name} would replace the config's process.env.${name}; reference it there as {"$secret": "${name}"}`,
        );
      env[name] = { $secret: name };
    }
    out = { ...out, process: { ...section, env } };
  }
  const missing = secretReferences(out ?? {}).filter((n) => !values.has(n));
  if (missing.length > 0)
    throw new FlotillaError(
      'FLT_VALIDATION',
      `the config references secrets without a value: ${missing.join(', ')}; give each with --secret NAME=@FILE or --secret-env NAME`,
      { details: { missing } },
    );
  const commitments: Record<string, string> = {};
  const openings: Record<string, SecretOpening> = {};
  for (const [name, value] of values) {
    const opening = { value, nonce: secretNonce() };
    openings[name] = opening;
    commitments[name] = secretCommitment(name, opening);
  }
  checkSecretDeclarations(out ?? {}, commitments);
  return { config: out, commitments, openings };
}
