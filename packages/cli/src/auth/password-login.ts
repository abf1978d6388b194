import type { User } from '@flotilla/protocol';
import { ApiClient } from '../api/client.js';
import { createToken, login, logoutSession } from '../api/operator.js';
import { writeCredentials } from '../config/credentials.js';
import type { Credentials } from '../config/credentials.js';

export interface PasswordLoginResult {
  credentials: Credentials & { tokenId: string };
  /** Where the credentials were written. */
  path: string;
  user: User;
  tokenName: string;
}

/**
 * Trades a password for a stored API token, as `flotilla login` and `flotilla up` do: a session is
 * opened only to create the token `cli@<hostname>`, then ended; the password is never stored.
 */
export async function loginWithPassword(input: {
  server: string;
  username: string;
  password: string;
  configDir: string;
  hostname: string;
}): Promise<PasswordLoginResult> {
  const anonymous = new ApiClient({ baseUrl: input.server });
  const session = await login(anonymous, input.username, input.password);
  const viaSession = anonymous.with({ cookie: session.cookie });
  const tokenName = `cli@${input.hostname}`;
  try {
    const created = await createToken(viaSession, { name: tokenName });
    const credentials = {
      server: input.server,
      token: created.secret,
      username: session.user.username,
      tokenId: created.token.id,
    };
    const path = await writeCredentials(input.configDir, credentials);
    return { credentials, path, user: session.user, tokenName };
  } finally {
    await logoutSession(viaSession).catch(() => undefined);
  }
}
