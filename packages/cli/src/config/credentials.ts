import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FlotillaError } from '@flotilla/protocol';
import { writePrivateFile } from './private-file.js';

export const CREDENTIALS_FILE = 'credentials.json';

export const Credentials = Type.Object({
  server: Type.String({ minLength: 1 }),
  token: Type.String({ minLength: 1 }),
  username: Type.String({ minLength: 1 }),
  /** The API token's id, so that `logout` can revoke it. */
  tokenId: Type.Optional(Type.String({ minLength: 1 })),
});
export type Credentials = Static<typeof Credentials>;

export function credentialsPath(configDir: string): string {
  return join(configDir, CREDENTIALS_FILE);
}

/** The stored credentials, or null when there are none. A corrupt file is an error, not "none". */
export async function readCredentials(configDir: string): Promise<Credentials | null> {
  const path = credentialsPath(configDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new FlotillaError('FLT_IO', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new FlotillaError('FLT_CONFIG_INVALID', `${path} is not valid JSON; run \`flotilla login\` again`, {
      cause,
      details: { problems: [`${path}: ${(cause as Error).message}`] },
    });
  }
  if (!Value.Check(Credentials, parsed)) {
    const problems = [...Value.Errors(Credentials, parsed)].map(
      (e) => `${path}: ${e.path || '/'} ${e.message}`,
    );
    throw new FlotillaError('FLT_CONFIG_INVALID', `${path} is malformed; run \`flotilla login\` again`, {
      details: { problems },
    });
  }
  return parsed;
}

export async function writeCredentials(configDir: string, credentials: Credentials): Promise<string> {
  const path = credentialsPath(configDir);
  await writePrivateFile(path, `${JSON.stringify(credentials, null, 2)}\n`);
  return path;
}

/** Deletes the stored credentials; true when a file was removed. */
export async function deleteCredentials(configDir: string): Promise<boolean> {
  const path = credentialsPath(configDir);
  try {
    await rm(path);
    return true;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new FlotillaError('FLT_IO', `cannot delete ${path}: ${(cause as Error).message}`, { cause });
  }
}
