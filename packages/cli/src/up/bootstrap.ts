/**
 * What `flotilla up` sets up through the operator API on top of a running server: the CLI's own
 * credentials (first run) and the local agent's registration key (kept in the data dir and reused).
 */
import { readFile } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import { ApiClient } from '../api/client.js';
import { createRegistrationKey, createToken, login, logoutSession, me } from '../api/operator.js';
import { credentialsPath, readCredentials, writeCredentials } from '../config/credentials.js';
import { writePrivateFile } from '../config/private-file.js';

export const LOCAL_AGENT_KEY_NAME = 'local-agent';
export const LOCAL_AGENT_TAGS = ['local'];

export interface CliLoginResult {
  /** Where the credentials are, or null when none could be set up. */
  credentialsPath: string | null;
  client: ApiClient | null;
}

/**
 * Logs the CLI in as the admin when this run created the admin (its password is at hand);
 * otherwise reuses stored credentials that work against this server, moving them to its URL.
 */
export async function ensureCliLogin(input: {
  url: string;
  configDir: string;
  hostname: string;
  adminUsername: string;
  initialAdminPassword: string | null;
}): Promise<CliLoginResult> {
  const anonymous = new ApiClient({ baseUrl: input.url });
  if (input.initialAdminPassword !== null) {
    const session = await login(anonymous, input.adminUsername, input.initialAdminPassword);
    const viaSession = anonymous.with({ cookie: session.cookie });
    try {
      const created = await createToken(viaSession, { name: `cli@${input.hostname}` });
      const path = await writeCredentials(input.configDir, {
        server: input.url,
        token: created.secret,
        username: session.user.username,
        tokenId: created.token.id,
      });
      return { credentialsPath: path, client: anonymous.with({ token: created.secret }) };
    } finally {
      await logoutSession(viaSession).catch(() => undefined);
    }
  }
  const stored = await readCredentials(input.configDir).catch(() => null);
  if (!stored) return { credentialsPath: null, client: null };
  const client = anonymous.with({ token: stored.token });
  try {
    await me(client);
  } catch {
    return { credentialsPath: null, client: null };
  }
  if (stored.server !== input.url) await writeCredentials(input.configDir, { ...stored, server: input.url });
  return { credentialsPath: credentialsPath(input.configDir), client };
}

/** The local agent's registration key file: reused when present, else created (mode 0600). */
export async function ensureLocalAgentKey(
  keyFile: string,
  client: ApiClient | null,
): Promise<{ created: boolean }> {
  const existing = await readFile(keyFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw new FlotillaError('FLT_IO', `cannot read ${keyFile}: ${e.message}`, { cause: e });
  });
  if (existing !== null && existing.trim() !== '') return { created: false };
  if (!client) {
    throw new FlotillaError(
      'FLT_UNAUTHENTICATED',
      `cannot create the local agent's registration key (${keyFile}): no working credentials for this server; ` +
        'run `flotilla login` first, or start over with a new --data-dir',
    );
  }
  const res = await createRegistrationKey(client, {
    name: LOCAL_AGENT_KEY_NAME,
    tags: LOCAL_AGENT_TAGS,
    autoAccept: true,
  });
  await writePrivateFile(keyFile, `${res.secret}\n`);
  return { created: true };
}
