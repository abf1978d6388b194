/**
 * New versions of offline-signed metadata: root rotation (keys and thresholds of any role change by
 * publishing root v(N+1) signed by a threshold of the old root keys and a threshold of the new) and
 * the next targets version. Also the checks a repository applies before accepting such metadata,
 * made with @tufjs/models' `verifyDelegate`.
 */
import type { Key, Metadata, Root, TargetFile, Targets } from '@tufjs/models';
import { FlotillaError } from '@flotilla/protocol';
import { newRoot, newTargets, TOP_LEVEL_ROLES } from './metadata.js';
import type { AnyMetadata, RoleKeys, TopLevelRole } from './metadata.js';

/** The keys and threshold a root assigns to `role`. */
export function roleKeysOf(root: Root, role: TopLevelRole): RoleKeys {
  const entry = root.roles[role];
  if (!entry) throw new FlotillaError('FLT_TUF_METADATA_INVALID', `root has no ${role} role`);
  const keys = entry.keyIDs.map((id) => root.keys[id]).filter((k): k is Key => k !== undefined);
  return { keys, threshold: entry.threshold };
}

/**
 * Root v(N+1), unsigned: the current roles with `changes` applied. Sign it with the old root keys
 * (spec 5.3.4: the trusted root must vouch for its successor) and the new ones (5.3.5: the new root
 * must be signed by its own threshold).
 */
export function nextRoot(
  current: Metadata<Root>,
  changes: Partial<Record<TopLevelRole, RoleKeys>>,
  expires: Date,
): Metadata<Root> {
  const roles = {} as Record<TopLevelRole, RoleKeys>;
  for (const role of TOP_LEVEL_ROLES) roles[role] = changes[role] ?? roleKeysOf(current.signed, role);
  return newRoot({
    version: current.signed.version + 1,
    expires,
    roles,
    consistentSnapshot: current.signed.consistentSnapshot,
  });
}

/** Targets v(N+1), unsigned: the current targets with `add` added (a target of the same path is replaced). */
export function nextTargets(
  current: Metadata<Targets> | undefined,
  add: readonly TargetFile[],
  expires: Date,
  remove: readonly string[] = [],
): Metadata<Targets> {
  const byPath = new Map<string, TargetFile>(Object.entries(current?.signed.targets ?? {}));
  for (const path of remove) byPath.delete(path);
  for (const target of add) byPath.set(target.path, target);
  return newTargets({
    version: (current?.signed.version ?? 0) + 1,
    expires,
    targets: [...byPath.values()],
    // A delegation (e.g. to the server's online gateway role) stays until the operator removes it.
    ...(current?.signed.delegations && { delegations: current.signed.delegations }),
  });
}

/** Checks `md` carries a threshold of valid signatures for `role` under `root`; FLT_TUF_SIGNATURE otherwise. */
export function verifySignedBy(root: Metadata<Root>, role: TopLevelRole, md: AnyMetadata): void {
  try {
    root.verifyDelegate(role, md);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new FlotillaError(
      'FLT_TUF_SIGNATURE',
      `${role} metadata is not signed by a threshold of its keys: ${reason}`,
      { cause },
    );
  }
}

/**
 * Accepts root v(N+1) only as the spec's client would (5.3.4–5.3.5): signed by a threshold of the
 * trusted root's root keys and by a threshold of its own, with version exactly N+1.
 */
export function verifyRootSuccessor(trusted: Metadata<Root>, next: Metadata<Root>): void {
  if (next.signed.version !== trusted.signed.version + 1) {
    throw new FlotillaError(
      'FLT_TUF_ROLLBACK',
      `new root must be version ${trusted.signed.version + 1}, got ${next.signed.version}`,
    );
  }
  verifySignedBy(trusted, 'root', next);
  verifySignedBy(next, 'root', next);
}
