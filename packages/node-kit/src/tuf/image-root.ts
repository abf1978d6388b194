/**
 * The first image root, as `flotilla keys init` builds it: offline root and targets keys (with their
 * thresholds) and the server's online snapshot and timestamp keys (from `GET /api/v1/tuf/online-keys`).
 * Unsigned: sign it with a threshold of the root keys.
 */
import type { Key, Metadata, Root } from '@tufjs/models';
import { tufKeyFromPublicKey } from './keys.js';
import { newRoot } from './metadata.js';
import type { TufOnlineKeys } from '@flotilla/protocol';

export function newImageRoot(opts: {
  rootKeys: Key[];
  rootThreshold?: number;
  targetsKeys: Key[];
  targetsThreshold?: number;
  online: TufOnlineKeys;
  expires: Date;
}): Metadata<Root> {
  return newRoot({
    version: 1,
    expires: opts.expires,
    roles: {
      root: { keys: opts.rootKeys, threshold: opts.rootThreshold ?? 1 },
      targets: { keys: opts.targetsKeys, threshold: opts.targetsThreshold ?? 1 },
      snapshot: { keys: [tufKeyFromPublicKey(opts.online.snapshot)], threshold: 1 },
      timestamp: { keys: [tufKeyFromPublicKey(opts.online.timestamp)], threshold: 1 },
    },
  });
}
