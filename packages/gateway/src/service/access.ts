/**
 * Who may do what with images (docs/gateway.md "Platforms and access"). Server admins and a
 * platform's admins may pull and remove there and see everything; deployers may pull; any
 * operator may list and look up public images. A private image is visible to its users and groups
 * (and its creator) only: to anyone else it does not exist.
 */
import type { GatewayConfig, PlatformConfig } from '../config/config.js';
import type { GatewayImagesTable } from '../jobs/tables.js';

export interface Operator {
  userId: string;
  username: string;
  role: 'admin' | 'deployer' | 'viewer';
}

export function administers(platform: PlatformConfig, op: Operator): boolean {
  return op.role === 'admin' || platform.admins.includes(op.username);
}

export function mayPull(platform: PlatformConfig, op: Operator): boolean {
  return administers(platform, op) || op.role === 'deployer';
}

export function maySee(config: GatewayConfig, row: GatewayImagesTable, op: Operator): boolean {
  if (row.private !== 1) return true;
  const platform = config.platforms[row.platform];
  if (platform !== undefined && administers(platform, op)) return true;
  if (row.created_by === op.username) return true;
  const users = JSON.parse(row.users) as string[];
  if (users.includes(op.username)) return true;
  const groups = JSON.parse(row.groups) as string[];
  return groups.some((g) => config.groups[g]?.includes(op.username) === true);
}
