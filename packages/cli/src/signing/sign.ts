/**
 * Signing and publishing offline metadata: new roots (signed by the old root keys and the new
 * ones) and new targets versions (signed by the targets keys the current root names).
 */
import type { Metadata, Root, TargetFile, Targets } from '@tufjs/models';
import { nextTargets, signMetadata } from '@flotilla/node-kit';
import type { TufSubmitResponse } from '@flotilla/protocol';
import type { ApiClient } from '../api/client.js';
import { currentTargets, submitTargets } from './image-api.js';
import type { RoleSigningKeys } from './role-keys.js';

/** Signs with the first `threshold` keys: more signatures add nothing a client checks. */
export async function signWith(md: Metadata<Root> | Metadata<Targets>, keys: RoleSigningKeys): Promise<void> {
  await signMetadata(
    md,
    keys.keys.slice(0, keys.threshold).map((k) => k.signer),
  );
}

/**
 * Publishes targets v(N+1): the current targets (fetched unless given) plus `add`, expiring at
 * `expires`, signed offline.
 * The server checks the signatures and version and re-signs snapshot and timestamp.
 */
export async function publishTargets(
  client: ApiClient,
  keys: RoleSigningKeys,
  add: readonly TargetFile[],
  expires: Date,
  current?: Metadata<Targets>,
): Promise<{ md: Metadata<Targets>; response: TufSubmitResponse }> {
  const md = nextTargets(current ?? (await currentTargets(client)), add, expires);
  await signWith(md, keys);
  return { md, response: await submitTargets(client, md) };
}
