import { FlotillaError } from '@flotilla/protocol';
import type { User } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import { listUsers } from '../../api/operator.js';
import { relativeTime } from '../../output/format.js';

export const USER_HEAD = ['id', 'username', 'role', 'disabled', 'created'];

export function userRow(user: User): string[] {
  return [user.id, user.username, user.role, user.disabled ? 'yes' : 'no', relativeTime(user.createdAt)];
}

/** Users are named by id or username on the command line. */
export async function findUser(client: ApiClient, idOrUsername: string): Promise<User> {
  const { items } = await listUsers(client);
  const user = items.find((u) => u.id === idOrUsername) ?? items.find((u) => u.username === idOrUsername);
  if (!user) throw new FlotillaError('FLT_NOT_FOUND', `no user with id or username "${idOrUsername}"`);
  return user;
}
