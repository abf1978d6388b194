/**
 * The delegation of some apps' releases to the server's online `gateway` role (TUF delegated
 * targets, as Uptane's image repository uses them): the offline targets key names the role, its one
 * key (the server's online gateway key) and the apps it may sign, as path patterns `<app>/*\/*`
 * over the release target paths `<app>/<version>/<rootObjectId>`. The server then signs
 * `gateway.json` itself for releases of those apps (the image gateway's `fleet` platforms); a TUF
 * client (tuf-js on the agent) looks a path up in `gateway.json` only when the offline-signed
 * delegation covers it, and only with that key's signature.
 */
import { Metadata, Targets } from '@tufjs/models';
import type { Key } from '@tufjs/models';
import { FlotillaError } from '@flotilla/protocol';
import { newTargets } from './metadata.js';

/** The delegated role's name: its metadata is `gateway.json` (`N.gateway.json`) in the image repository. */
export const GATEWAY_ROLE = 'gateway';

const APP = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;
const PATTERN = /^([A-Za-z0-9][A-Za-z0-9_.+-]{0,127})\/\*\/\*$/;

/** The path pattern delegating every release of `app`. */
export function gatewayPathPattern(app: string): string {
  if (!APP.test(app)) throw new FlotillaError('FLT_VALIDATION', `invalid app name: ${app}`);
  return `${app}/*/*`;
}

/** What an offline-signed targets delegates to the gateway role: its key and the apps. */
export interface GatewayDelegation {
  keyId: string;
  key: Key;
  apps: string[];
}

/**
 * The gateway delegation of `targets`, checked: undefined without delegations; otherwise exactly
 * one delegated role, `gateway`, with one key, threshold 1, terminating, and path patterns
 * `<app>/*\/*` only. Anything else is FLT_TUF_METADATA_INVALID (the server could not honour it).
 */
export function readGatewayDelegation(targets: Targets): GatewayDelegation | undefined {
  const delegations = targets.delegations;
  if (!delegations) return undefined;
  const invalid = (why: string) =>
    new FlotillaError('FLT_TUF_METADATA_INVALID', `targets delegations: ${why}`, {
      details: { reason: why },
    });
  if (delegations.succinctRoles) throw invalid('succinct hash bins are not supported');
  const roles = Object.entries(delegations.roles ?? {});
  if (roles.length === 0) return undefined;
  if (roles.length !== 1 || roles[0]?.[0] !== GATEWAY_ROLE)
    throw invalid(`only the ${GATEWAY_ROLE} role may be delegated to`);
  const role = roles[0][1];
  if (role.keyIDs.length !== 1 || role.threshold !== 1)
    throw invalid(`the ${GATEWAY_ROLE} role must have one key and threshold 1`);
  if (!role.terminating) throw invalid(`the ${GATEWAY_ROLE} delegation must be terminating`);
  const keyId = role.keyIDs[0] as string;
  const key = delegations.keys[keyId];
  if (!key) throw invalid(`the ${GATEWAY_ROLE} role's key ${keyId} is not listed`);
  if (role.pathHashPrefixes || !role.paths || role.paths.length === 0)
    throw invalid(`the ${GATEWAY_ROLE} role must delegate path patterns <app>/*/*`);
  const apps: string[] = [];
  for (const pattern of role.paths) {
    const m = PATTERN.exec(pattern);
    if (!m) throw invalid(`path pattern ${pattern} is not <app>/*/*`);
    apps.push(m[1] as string);
  }
  return { keyId, key, apps: [...new Set(apps)].sort() };
}

/** Whether a release target path falls under the delegation (the agent's tuf-js decides the same way). */
export function isGatewayPath(delegation: GatewayDelegation, path: string): boolean {
  const parts = path.split('/');
  return parts.length === 3 && delegation.apps.includes(parts[0] as string);
}

/**
 * Targets v(N+1), unsigned: `current` with its delegations replaced by a delegation of `apps` to
 * the gateway role held by `key` (no delegation at all when `apps` is empty). Sign it offline.
 */
export function withGatewayDelegation(
  current: Metadata<Targets> | undefined,
  key: Key,
  apps: readonly string[],
  expires: Date,
): Metadata<Targets> {
  const sorted = [...new Set(apps)].sort();
  const next = newTargets({
    version: (current?.signed.version ?? 0) + 1,
    expires,
    targets: Object.values(current?.signed.targets ?? {}),
  });
  if (sorted.length === 0) return next;
  const json = next.signed.toJSON();
  json.delegations = {
    keys: { [key.keyID]: key.toJSON() },
    roles: [
      {
        name: GATEWAY_ROLE,
        keyids: [key.keyID],
        threshold: 1,
        terminating: true,
        paths: sorted.map(gatewayPathPattern),
      },
    ],
  };
  return new Metadata(Targets.fromJSON(json));
}
