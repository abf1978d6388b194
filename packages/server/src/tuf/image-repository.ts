/**
 * The TUF image repository. Root and targets arrive signed offline (by the CLI's keys) and are
 * accepted only when they verify exactly as a client would verify them; snapshot and timestamp are
 * signed here with the online keys. Consistent snapshots: every version is served as
 * `N.<role>.json`, plus `root.json` and `timestamp.json` for the latest.
 */
import { FlotillaError } from '@flotilla/protocol';
import {
  parseMetadata,
  publicKeyOfTufKey,
  readReleaseTarget,
  verifyRootSuccessor,
  verifySignedBy,
} from '@flotilla/node-kit';
import type { Metadata, Root, TargetFile, Targets } from '@tufjs/models';
import type { Clock } from '../context.js';
import { KeyedSerialQueue } from '@flotilla/node-kit';
import type { MetadataStore } from './metadata-store.js';
import type { OnlineKeys } from './online-keys.js';
import {
  latest,
  publishSnapshotAndTimestamp,
  readServedFile,
  refreshOnlineRoles,
} from './online-publisher.js';
import type { Published, PublisherContext } from './online-publisher.js';
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
  onlinePublicKeys(): { snapshot: string; timestamp: string } {
    return {
      snapshot: publicKeyOfTufKey(this.#ctx.keys.snapshot.key),
      timestamp: publicKeyOfTufKey(this.#ctx.keys.timestamp.key),
    };
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
   * One target of the latest targets metadata, or undefined. Every director re-sign asks, so the
   * latest targets are parsed once per version; the entry returned is shared: read it, never change it.
   */
  async target(path: string): Promise<TargetFile | undefined> {
    const version = await this.#ctx.store.latestVersion(REPO, 'targets');
    if (version === undefined) return undefined;
    let parsed = this.#parsedTargets;
    if (parsed?.version !== version) {
      const found = await latest(this.#ctx.store, REPO, 'targets');
      if (!found) return undefined;
      parsed = { version: found.version, targets: parseMetadata('targets', found.bytes) };
      this.#parsedTargets = parsed;
    }
    const { targets } = parsed.targets.signed;
    return Object.prototype.hasOwnProperty.call(targets, path) ? targets[path] : undefined;
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
      await this.#ctx.store.put(REPO, 'targets', next.signed.version, bytes);
      return { targets: next.signed.version, ...(await publishSnapshotAndTimestamp(this.#ctx, REPO, now)) };
    });
  }

  /** Re-signs snapshot and/or timestamp when they near expiry (see TufExpiryPolicy). */
  refreshOnline(now: Date = this.#clock.now()): Promise<Published | undefined> {
    return this.#mutex.run(REPO, () => refreshOnlineRoles(this.#ctx, REPO, now));
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
