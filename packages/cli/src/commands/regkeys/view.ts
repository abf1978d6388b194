import type { RegistrationKey } from '@flotilla/protocol';
import { list, orDash, relativeTime } from '../../output/format.js';

export function regkeyFields(key: RegistrationKey): [string, string][] {
  return [
    ['id', key.id],
    ['name', key.name],
    ['state', key.state],
    ['tags', list(key.tags)],
    ['uses', key.maxUses === null ? `${key.uses}` : `${key.uses}/${key.maxUses}`],
    ['auto-accept', key.autoAccept ? 'yes' : 'no'],
    ['expires', key.expiresAt ? `${key.expiresAt} (${relativeTime(key.expiresAt)})` : 'never'],
    ['created', `${key.createdAt} by ${key.createdBy}`],
    ['revoked', orDash(key.revokedAt)],
  ];
}

export const REGKEY_HEAD = ['id', 'name', 'state', 'tags', 'uses', 'auto-accept', 'expires', 'created'];

export function regkeyRow(key: RegistrationKey): string[] {
  return [
    key.id,
    key.name,
    key.state,
    list(key.tags),
    key.maxUses === null ? `${key.uses}` : `${key.uses}/${key.maxUses}`,
    key.autoAccept ? 'yes' : 'no',
    key.expiresAt ? relativeTime(key.expiresAt) : 'never',
    relativeTime(key.createdAt),
  ];
}
