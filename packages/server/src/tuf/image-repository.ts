/**
 * The TUF image repository. Root and targets arrive signed offline (by the CLI's keys) and are
 * accepted only when they verify exactly as a client would verify them; snapshot and timestamp are
 * signed here with the online keys. Consistent snapshots: every version is served as
 * `N.<role>.json`, plus `root.json` and `timestamp.json` for the latest.
 *
 * The offline targets may delegate apps to the online `gateway` role (`gateway.json`, signed here
 * with the server's gateway key): releases of those apps are then signed by the server, for the
 * image gateway's `fleet` platforms, and by nothing else (docs/releases.md "Delegated signing").
 */
import { FlotillaError } from '@flotilla/protocol';
import {
  GATEWAY_ROLE,
  isGatewayPath,
  newTargets,
  parseMetadata,
  publicKeyOfTufKey,
  readGatewayDelegation,
  readReleaseTarget,
  serializeMetadata,
  signMetadata,
  verifyRootSuccessor,
  verifySignedBy,
} from '@flotilla/node-kit';
import type { GatewayDelegation } from '@flotilla/node-kit';
import type { Metadata, Root, TargetFile, Targets } from '@tufjs/models';
import type { Clock } from '../context.js';
import { KeyedSerialQueue } from '@flotilla/node-kit';
import type { MetadataStore } from './metadata-store.js';
import type { OnlineKeys } from './online-keys.js';
import {
  KEEP_SUPERSEDED_VERSIONS,
  latest,
  publishSnapshotAndTimestamp,
  readServedFile,
  refreshOnlineRoles,
} from './online-publisher.js';
import type { Published, PublisherContext } from './online-publisher.js';
import { expiresAfter, needsRefresh } from './expiry.js';
import type { ExpiryWarning, TufExpiryPolicy } from './expiry.js';

const REPO = 'image';
/** Largest accepted offline metadata, equal to tuf-js's client limits so devices never refuse what we publish. */
export const MAX_ROOT_BYTES = 512_000;
export const MAX_TARGETS_BYTES = 5_000_000;

export interface ImageRepositoryOptions {
  store: MetadataStore;
  keys: OnlineKeys;
  policy: TufExpiryPolicy;
  clock: Clock;
}

export class ImageRepository {
  readonly #ctx: PublisherContext;
  readonly #clock: Clock;
  readonly #mutex = new KeyedSerialQueue();
  /** The latest targets parsed, for `target` (a stored version never changes: kept until a newer one). */
  #parsedTargets: { version: number; targets: Metadata<Targets> } | undefined;

  constructor(opts: ImageRepositoryOptions) {
    this.#ctx = { store: opts.store, keys: opts.keys, policy: opts.policy };
    this.#clock = opts.clock;
  }

  /** The online public keys (raw ed25519, base64url) an offline root must name for snapshot and timestamp. */
  onlinePublicKeys(): { snapshot: string; timestamp: string; gateway: string } {
    return {
      snapshot: publicKeyOfTufKey(this.#ctx.keys.snapshot.key),
      timestamp: publicKeyOfTufKey(this.#ctx.keys.timestamp.key),
      gateway: publicKeyOfTufKey(this.#ctx.keys.gateway.key),
    };
  }

  /** The id of this server's online gateway key (the one a gateway delegation must name). */
  gatewayKeyId(): string {
    return this.#ctx.keys.gateway.key.keyID;
  }

  /** The latest trusted root, or undefined before `flotilla keys init` registered one. */
  async root(): Promise<Metadata<Root> | undefined> {
    const found = await latest(this.#ctx.store, REPO, 'root');
    return found && parseMetadata('root', found.bytes);
  }

  /** The latest targets, or undefined before the first release was signed. */
  async targets(): Promise<Metadata<Targets> | undefined> {
    const found = await latest(this.#ctx.store, REPO, 'targets');
    return found && parseMetadata('targets', found.bytes);
  }

  /**
   * One target, resolved as a TUF client resolves it: the latest offline-signed targets first, then,
   * for a path the offline targets delegate to the gateway role, the latest `gateway.json` (only
   * while it verifies under that delegation). Undefined when neither vouches for it. Every director
   * re-sign asks, so the latest targets are parsed once per version; the entry returned is shared:
   * read it, never change it.
   */
  async target(path: string): Promise<TargetFile | undefined> {
    const targets = await this.#latestTargetsParsed();
    if (!targets) return undefined;
    if (Object.prototype.hasOwnProperty.call(targets.signed.targets, path))
      return targets.signed.targets[path];
    const delegated = await this.#delegatedTargets(targets);
    return delegated && Object.prototype.hasOwnProperty.call(delegated, path) ? delegated[path] : undefined;
  }

  async #latestTargetsParsed(): Promise<Metadata<Targets> | undefined> {
    const version = await this.#ctx.store.latestVersion(REPO, 'targets');
    if (version === undefined) return undefined;
    if (this.#parsedTargets?.version !== version) {
      const found = await latest(this.#ctx.store, REPO, 'targets');
      if (!found) return undefined;
      this.#parsedTargets = { version: found.version, targets: parseMetadata('targets', found.bytes) };
    }
    return this.#parsedTargets.targets;
  }

  /** Every target a client would accept: the offline-signed ones and the delegated ones under their delegation. */
  async allTargets(): Promise<Record<string, TargetFile>> {
    const targets = await this.targets();
    if (!targets) return {};
    return { ...((await this.#delegatedTargets(targets)) ?? {}), ...targets.signed.targets };
  }

  /** The gateway delegation of the latest offline targets, or undefined (none, or one this server cannot honour). */
  async gatewayDelegation(): Promise<GatewayDelegation | undefined> {
    const targets = await this.targets();
    return targets && this.#delegationOf(targets);
  }

  /** The latest `gateway.json`, or undefined before the gateway role signed anything. */
  async gatewayTargets(): Promise<Metadata<Targets> | undefined> {
    const found = await latest(this.#ctx.store, REPO, GATEWAY_ROLE);
    return found && parseMetadata('targets', found.bytes);
  }

  #delegationOf(targets: Metadata<Targets>): GatewayDelegation | undefined {
    try {
      return readGatewayDelegation(targets.signed);
    } catch {
      return undefined; // refused at upload; an older file cannot be honoured either
    }
  }

  async #delegatedTargets(targets: Metadata<Targets>): Promise<Record<string, TargetFile> | undefined> {
    const delegation = this.#delegationOf(targets);
    if (!delegation) return undefined;
    const gateway = await this.gatewayTargets();
    if (!gateway) return undefined;
    try {
      targets.verifyDelegate(GATEWAY_ROLE, gateway);
    } catch {
      return undefined; // signed by a key the delegation no longer names (re-signed at the next publish)
    }
    const found: Record<string, TargetFile> = {};
    for (const [path, target] of Object.entries(gateway.signed.targets))
      if (isGatewayPath(delegation, path)) found[path] = target;
    return found;
  }

  /**
   * Signs a release target into `gateway.json` with the online gateway key, then publishes snapshot
   * and timestamp. Refused with FLT_TUF_NOT_DELEGATED unless the latest offline targets delegate the
   * target's app to the gateway role, and with FLT_TUF_KEY_MISMATCH when the delegation names
   * another key than this server's. A target the offline targets already list needs nothing.
   */
  async signGatewayTarget(target: TargetFile): Promise<{ gateway?: number } & Partial<Published>> {
    readReleaseTarget(target);
    return this.#mutex.run(REPO, async () => {
      const targets = await this.targets();
      const delegation = this.#requireDelegation(targets, target.path);
      const listed = targets?.signed.targets[target.path];
      if (listed && listed.equals(target)) return {};
      return this.#publishGateway(delegation, [target], []);
    });
  }

  /** Removes a target from `gateway.json` (an expired image); nothing when it is not there. */
  async removeGatewayTarget(path: string): Promise<{ gateway?: number } & Partial<Published>> {
    return this.#mutex.run(REPO, async () => {
      const targets = await this.targets();
      const delegation = targets && this.#delegationOf(targets);
      const current = await this.gatewayTargets();
      if (!delegation || !current || !Object.prototype.hasOwnProperty.call(current.signed.targets, path))
        return {};
      return this.#publishGateway(delegation, [], [path]);
    });
  }

  #requireDelegation(targets: Metadata<Targets> | undefined, path: string): GatewayDelegation {
    const delegation = targets && this.#delegationOf(targets);
    if (!delegation || !isGatewayPath(delegation, path)) {
      const app = path.split('/')[0] ?? '';
      throw new FlotillaError(
        'FLT_TUF_NOT_DELEGATED',
        `the offline targets do not delegate app ${app} to the server's gateway role; ` +
          `run \`flotilla keys delegate-gateway --app ${app}\` on the machine with the offline keys`,
        { details: { path, app, delegated: delegation?.apps ?? [] } },
      );
    }
    const own = this.#ctx.keys.gateway.key.keyID;
    if (delegation.keyId !== own)
      throw new FlotillaError(
        'FLT_TUF_KEY_MISMATCH',
        `the gateway delegation names key ${delegation.keyId}, not this server's gateway key ${own}; ` +
          'run `flotilla keys delegate-gateway` again',
        { details: { role: GATEWAY_ROLE, expected: own, got: delegation.keyId } },
      );
    return delegation;
  }

  /**
   * `gateway.json` v(N+1): the current entries still under the delegation, minus `remove`, plus
   * `add`, signed with the gateway key; then snapshot and timestamp. Runs under the mutex.
   */
  async #publishGateway(
    delegation: GatewayDelegation,
    add: readonly TargetFile[],
    remove: readonly string[],
  ): Promise<{ gateway: number } & Published> {
    const now = this.#clock.now();
    const current = await this.gatewayTargets();
    const byPath = new Map<string, TargetFile>();
    for (const [path, target] of Object.entries(current?.signed.targets ?? {}))
      if (isGatewayPath(delegation, path)) byPath.set(path, target);
    for (const path of remove) byPath.delete(path);
    for (const target of add) byPath.set(target.path, target);
    const version = ((await this.#ctx.store.latestVersion(REPO, GATEWAY_ROLE)) ?? 0) + 1;
    const md = newTargets({
      version,
      expires: expiresAfter(now, this.#ctx.policy.directorTargetsSeconds),
      targets: [...byPath.values()],
    });
    await signMetadata(md, [this.#ctx.keys.gateway]);
    await this.#ctx.store.put(REPO, GATEWAY_ROLE, version, serializeMetadata(md));
    const published = await publishSnapshotAndTimestamp(this.#ctx, REPO, now);
    // Superseded versions stay served as long as the snapshots that may name them.
    await this.#ctx.store.deleteBelow(REPO, GATEWAY_ROLE, version - KEEP_SUPERSEDED_VERSIONS);
    return { gateway: version, ...published };
  }

  /**
   * Accepts a root signed offline: version 1 must be signed by a threshold of its own root keys;
   * later versions by a threshold of the trusted root's keys and of their own (spec 5.3.4–5.3.5).
   * The snapshot and timestamp roles must be exactly this server's online keys, and no online key may
   * hold the root or targets role.
   */
  async submitRoot(bytes: Uint8Array): Promise<{ version: number }> {
    if (bytes.length > MAX_ROOT_BYTES)
      throw new FlotillaError('FLT_LIMIT_EXCEEDED', `root metadata exceeds ${MAX_ROOT_BYTES} bytes`);
    const next = parseMetadata('root', bytes);
    return this.#mutex.run(REPO, async () => {
      const now = this.#clock.now();
      const current = await this.root();
      if (current) verifyRootSuccessor(current, next);
      else {
        if (next.signed.version !== 1)
          throw new FlotillaError(
            'FLT_TUF_ROLLBACK',
            `the first root must be version 1, got ${next.signed.version}`,
          );
        verifySignedBy(next, 'root', next);
      }
      if (next.signed.isExpired(now))
        throw new FlotillaError(
          'FLT_TUF_FREEZE',
          `root v${next.signed.version} expired at ${next.signed.expires}`,
        );
      if (!next.signed.consistentSnapshot)
        throw new FlotillaError('FLT_TUF_METADATA_INVALID', 'root must enable consistent snapshots');
      this.#checkRoleKeys(next.signed);
      await this.#ctx.store.put(REPO, 'root', next.signed.version, bytes);
      return { version: next.signed.version };
    });
  }

  #checkRoleKeys(root: Root): void {
    const online = this.#ctx.keys;
    for (const role of ['snapshot', 'timestamp'] as const) {
      const entry = root.roles[role];
      if (
        !entry ||
        entry.threshold !== 1 ||
        entry.keyIDs.length !== 1 ||
        entry.keyIDs[0] !== online[role].key.keyID
      ) {
        throw new FlotillaError(
          'FLT_TUF_KEY_MISMATCH',
          `root must give the ${role} role to this server's online ${role} key ${online[role].key.keyID} alone`,
          {
            details: { role, expected: online[role].key.keyID, got: entry?.keyIDs ?? [] },
          },
        );
      }
    }
    const onlineIds = new Set(Object.values(online).map((s) => s.key.keyID));
    for (const role of ['root', 'targets'] as const) {
      const misused = (root.roles[role]?.keyIDs ?? []).filter((id) => onlineIds.has(id));
      if (misused.length > 0) {
        throw new FlotillaError(
          'FLT_TUF_KEY_MISMATCH',
          `the ${role} role must be held by offline keys, not the server's online keys`,
          { details: { role, misused } },
        );
      }
    }
  }

  /**
   * Accepts targets signed offline (threshold of the root's targets keys, version above the current,
   * not expired, every target a well-formed release) and publishes snapshot and timestamp for it.
   */
  async submitTargets(bytes: Uint8Array): Promise<Published & { targets: number }> {
    if (bytes.length > MAX_TARGETS_BYTES)
      throw new FlotillaError('FLT_LIMIT_EXCEEDED', `targets metadata exceeds ${MAX_TARGETS_BYTES} bytes`);
    const next = parseMetadata('targets', bytes);
    for (const target of Object.values(next.signed.targets)) readReleaseTarget(target);
    return this.#mutex.run(REPO, async () => {
      const now = this.#clock.now();
      const root = await this.root();
      if (!root)
        throw new FlotillaError(
          'FLT_TUF_NOT_INITIALIZED',
          'the image repository has no root; run `flotilla keys init`',
        );
      verifySignedBy(root, 'targets', next);
      const currentVersion = (await this.#ctx.store.latestVersion(REPO, 'targets')) ?? 0;
      if (next.signed.version <= currentVersion) {
        throw new FlotillaError(
          'FLT_TUF_ROLLBACK',
          `targets version must be above ${currentVersion}, got ${next.signed.version}`,
        );
      }
      if (next.signed.isExpired(now))
        throw new FlotillaError(
          'FLT_TUF_FREEZE',
          `targets v${next.signed.version} expired at ${next.signed.expires}`,
        );
      const delegation = readGatewayDelegation(next.signed);
      const own = this.#ctx.keys.gateway.key.keyID;
      if (delegation && delegation.keyId !== own)
        throw new FlotillaError(
          'FLT_TUF_KEY_MISMATCH',
          `the gateway delegation must name this server's online gateway key ${own}, not ${delegation.keyId}`,
          { details: { role: GATEWAY_ROLE, expected: own, got: delegation.keyId } },
        );
      await this.#ctx.store.put(REPO, 'targets', next.signed.version, bytes);
      // The delegation may have changed (apps removed, a new key after a rotation): gateway.json is
      // re-signed with the current key and keeps only the targets still delegated.
      if (delegation && (await this.gatewayTargets()))
        return { targets: next.signed.version, ...(await this.#publishGateway(delegation, [], [])) };
      return { targets: next.signed.version, ...(await publishSnapshotAndTimestamp(this.#ctx, REPO, now)) };
    });
  }

  /**
   * Re-signs the gateway role, snapshot and/or timestamp when they near expiry (see
   * TufExpiryPolicy); the gateway role only while delegated to.
   */
  refreshOnline(now: Date = this.#clock.now()): Promise<Published | undefined> {
    return this.#mutex.run(REPO, async () => {
      const gateway = await this.gatewayTargets();
      const targets = gateway && (await this.targets());
      const delegation = targets && this.#delegationOf(targets);
      if (
        gateway &&
        delegation?.keyId === this.#ctx.keys.gateway.key.keyID &&
        needsRefresh(gateway.signed.expires, this.#ctx.policy.directorTargetsSeconds, now, this.#ctx.policy)
      )
        return this.#publishGateway(delegation, [], []);
      return refreshOnlineRoles(this.#ctx, REPO, now);
    });
  }

  /** Offline roles (root, targets) that expire within the policy's warning window, with the renewal command. */
  async expiryWarnings(now: Date = this.#clock.now()): Promise<ExpiryWarning[]> {
    const warnings: ExpiryWarning[] = [];
    const offline = [
      { role: 'root' as const, md: await this.root() },
      { role: 'targets' as const, md: await this.targets() },
    ];
    for (const { role, md } of offline) {
      if (!md) continue;
      const remainingSeconds = Math.floor((Date.parse(md.signed.expires) - now.getTime()) / 1000);
      if (remainingSeconds > this.#ctx.policy.offlineWarnSeconds) continue;
      warnings.push({
        repository: 'image',
        role,
        version: md.signed.version,
        expires: md.signed.expires,
        remainingSeconds,
        expired: remainingSeconds <= 0,
        command: `flotilla keys renew --role ${role}`,
      });
    }
    return warnings;
  }

  /** The bytes of a served metadata file (`root.json`, `timestamp.json`, `N.<role>.json`), or undefined. */
  readFile(name: string): Promise<Buffer | undefined> {
    return readServedFile(this.#ctx.store, REPO, REPO, name);
  }
}
