import { FlotillaError, LIMITS } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import { listDevices } from '../../api/operator.js';

const FULL_ID = /^[0-9a-f]{32}$/;
const PREFIX = /^[0-9a-f]{4,31}$/;

/**
 * Accepts a full device id or the short prefix that `devices ls` prints. A prefix is resolved by
 * listing devices; it must match exactly one.
 */
export async function resolveDeviceId(client: ApiClient, idOrPrefix: string): Promise<string> {
  if (FULL_ID.test(idOrPrefix) || !PREFIX.test(idOrPrefix)) return idOrPrefix;
  const matches: string[] = [];
  for (let offset = 0; ; offset += LIMITS.pageSizeMax) {
    const page = await listDevices(client, { limit: LIMITS.pageSizeMax, offset });
    matches.push(...page.items.map((d) => d.id).filter((id) => id.startsWith(idOrPrefix)));
    if (page.items.length === 0 || offset + page.items.length >= page.total) break;
  }
  if (matches.length === 1) return matches[0] as string;
  if (matches.length === 0)
    throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device id starts with ${idOrPrefix}`);
  throw new FlotillaError(
    'FLT_VALIDATION',
    `${matches.length} devices match ${idOrPrefix}: give more of the id`,
    {
      details: { problems: matches.slice(0, 10) },
    },
  );
}
