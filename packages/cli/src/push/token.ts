import { FlotillaError } from '@flotilla/protocol';
import type { ApiClient } from '../api/client.js';
import { normalizeServerUrl } from '../api/server-url.js';
import { readCredentials } from '../config/credentials.js';
import type { CommandContext } from '../context.js';

/**
 * The bearer token `ctx.client()` authenticated `client` with, for the binary upload that bypasses
 * the JSON client: `$FLOTILLA_TOKEN`, else the stored token, only if it was issued by this server.
 */
export async function bearerTokenFor(ctx: CommandContext, client: ApiClient): Promise<string> {
  const fromEnv = ctx.io.env.FLOTILLA_TOKEN;
  if (fromEnv) return fromEnv;
  const stored = await readCredentials(ctx.configDir);
  if (stored && normalizeServerUrl(stored.server) === client.baseUrl) return stored.token;
  throw new FlotillaError('FLT_UNAUTHENTICATED', `not logged in to ${client.baseUrl}`);
}
