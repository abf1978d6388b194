import type { ApiToken } from '@flotilla/protocol';
import { relativeTime } from '../../output/format.js';

export const TOKEN_HEAD = ['id', 'name', 'created', 'expires', 'last used'];

export function tokenRow(token: ApiToken): string[] {
  return [
    token.id,
    token.name,
    relativeTime(token.createdAt),
    token.expiresAt ? relativeTime(token.expiresAt) : 'never',
    relativeTime(token.lastUsedAt),
  ];
}
