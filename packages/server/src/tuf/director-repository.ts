/**
 * The director: per-device targets, signed with the online director key, naming for each app the
 * release the device must run. Its entries copy length, hashes and custom fields from the image
 * repository's offline-signed target and add the rollout; a device installs a release only when the
 * director's target agrees with the image repository's, so the director (or an attacker holding every
 * online key) can choose among signed releases but never introduce bytes of its own.
 *
 * One director root (repository `director`) serves all devices: root and targets roles hold the
 * director key, snapshot and timestamp the server's online keys. It is renewed by the server.
 */
import { FlotillaError } from '@flotilla/protocol';
import {
  newRoot,
  newTargets,
  nextRoot,
  parseMetadata,
  readReleaseTarget,
  serializeMetadata,
  signMetadata,
} from '@flotilla/node-kit';
import type { SealedSecrets } from '@flotilla/protocol';
import type { Metadata, Root, Targets } from '@tufjs/models';
import { TargetFile } from '@tufjs/models';
import type { Clock } from '../context.js';
import { expiresAfter, needsRefresh } from './expiry.js';
import type { TufExpiryPolicy } from './expiry.js';
import type { ImageRepository } from './image-repository.js';
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

const ROOT_REPO = 'director';
const DEVICE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** One app's assignment: the image repository's target path and the rollout it belongs to. */
export interface DirectorAssignment {
  path: string;
  rollout?: string;
  /** The release's secrets sealed to this device (docs/security.md "Secrets in runtime config"). */
  sealedSecrets?: SealedSecrets;
}

export interface DirectorRepositoryOptions {
  store: MetadataStore;
  keys: OnlineKeys;
  policy: TufExpiryPolicy;
  clock: Clock;
  image: ImageRepository;
}

function deviceRepo(deviceId: string): string {
  if (!DEVICE_ID.test(deviceId)) throw new FlotillaError('FLT_VALIDATION', `invalid device id: ${deviceId}`);
  return `${ROOT_REPO}/${deviceId}`;
}

export class DirectorRepository {
  readonly #ctx: PublisherContext;
  readonly #clock: Clock;
  readonly #image: ImageRepository;
  readonly #mutex = new KeyedSerialQueue();
  /** Devices whose repository this process found or published (`initDevice`). */
  readonly #initialized = new Set<string>();

  constructor(opts: DirectorRepositoryOptions) {
    this.#ctx = { store: opts.store, keys: opts.keys, policy: opts.policy };
    this.#clock = opts.clock;
    this.#image = opts.image;
  }

  /** The director's root (created at first use, renewed by `refreshOnline`); agents are provisioned with it. */
  root(): Promise<Metadata<Root>> {
    return this.#mutex.run(ROOT_REPO, async () => {
      const found = await latest(this.#ctx.store, ROOT_REPO, 'root');
      if (found) return parseMetadata('root', found.bytes);
      return this.#publishRoot(undefined, this.#clock.now());
    });
  }

  /** Creates the director's root at first use (without reading it back: `root()` does that). */
  async #ensureRoot(): Promise<void> {
    if ((await this.#ctx.store.latestVersion(ROOT_REPO, 'root')) === undefined) await this.root();
  }

  async #publishRoot(current: Metadata<Root> | undefined, now: Date): Promise<Metadata<Root>> {
    const { director, snapshot, timestamp } = this.#ctx.keys;
    const expires = expiresAfter(now, this.#ctx.policy.directorRootSeconds);
    const one = (key: typeof director.key) => ({ keys: [key], threshold: 1 });
    const root = current
      ? nextRoot(
          current,
          {
            root: one(director.key),
            targets: one(director.key),
            snapshot: one(snapshot.key),
            timestamp: one(timestamp.key),
          },
          expires,
        )
      : newRoot({
          version: 1,
          expires,
          roles: {
            root: one(director.key),
            targets: one(director.key),
            snapshot: one(snapshot.key),
            timestamp: one(timestamp.key),
          },
        });
    await signMetadata(root, [director]);
    await this.#ctx.store.put(ROOT_REPO, 'root', root.signed.version, serializeMetadata(root));
    return root;
  }

  /** Gives a device empty director targets (idempotent), so its agent can refresh before any assignment. */
  async initDevice(deviceId: string): Promise<void> {
    // Every director read asks; a repository once published stays (superseded versions go, the
    // latest never does), so each device's is looked for once per process.
    if (this.#initialized.has(deviceId)) return;
    const repo = deviceRepo(deviceId);
    await this.#ensureRoot();
    await this.#mutex.run(repo, async () => {
      if ((await this.#ctx.store.latestVersion(repo, 'targets')) === undefined)
        await this.#publishTargets(repo, [], this.#clock.now());
    });
    this.#initialized.add(deviceId);
  }

  /**
   * Replaces the device's assignments: for each app, the image repository's release target (which must
   * exist there: FLT_TUF_TARGET_MISSING otherwise) with the rollout. At most one release per app.
   */
  async assign(
    deviceId: string,
    assignments: readonly DirectorAssignment[],
  ): Promise<Published & { targets: number }> {
    const repo = deviceRepo(deviceId);
    const entries: TargetFile[] = [];
    const apps = new Set<string>();
    for (const { path, rollout, sealedSecrets } of assignments) {
      const imageTarget = await this.#image.target(path);
      if (!imageTarget)
        throw new FlotillaError('FLT_TUF_TARGET_MISSING', `the image repository has no target ${path}`, {
          details: { path },
        });
      const { custom } = readReleaseTarget(imageTarget);
      if (apps.has(custom.app))
        throw new FlotillaError('FLT_VALIDATION', `app ${custom.app} is assigned twice`, {
          details: { app: custom.app },
        });
      apps.add(custom.app);
      const directorCustom = {
        ...custom,
        ...(rollout !== undefined && { rollout }),
        ...(sealedSecrets !== undefined && { sealedSecrets }),
      };
      const committed = Object.keys(custom.secrets ?? {}).sort();
      if (
        committed.join() !==
        Object.keys(sealedSecrets ?? {})
          .sort()
          .join()
      )
        throw new FlotillaError(
          'FLT_SECRET_MISSING',
          `${path}: the director must carry exactly the release's secrets, sealed to the device`,
          { details: { path, committed, sealed: Object.keys(sealedSecrets ?? {}) } },
        );
      const entry = new TargetFile({
        path,
        length: imageTarget.length,
        hashes: { ...imageTarget.hashes },
        unrecognizedFields: { custom: directorCustom as never },
      });
      readReleaseTarget(entry); // validates the rollout id and the sealed secrets
      entries.push(entry);
    }
    await this.#ensureRoot();
    return this.#mutex.run(repo, () => this.#publishTargets(repo, entries, this.#clock.now()));
  }

  async #publishTargets(
    repo: string,
    entries: TargetFile[],
    now: Date,
  ): Promise<Published & { targets: number }> {
    const version = ((await this.#ctx.store.latestVersion(repo, 'targets')) ?? 0) + 1;
    const targets = newTargets({
      version,
      expires: expiresAfter(now, this.#ctx.policy.directorTargetsSeconds),
      targets: entries,
    });
    await signMetadata(targets, [this.#ctx.keys.director]);
    await this.#ctx.store.put(repo, 'targets', version, serializeMetadata(targets));
    const published = await publishSnapshotAndTimestamp(this.#ctx, repo, now);
    await this.#ctx.store.deleteBelow(repo, 'targets', version - KEEP_SUPERSEDED_VERSIONS);
    return { targets: version, ...published };
  }

  /** The device's current director targets, or undefined if it was never initialised. */
  async targets(deviceId: string): Promise<Metadata<Targets> | undefined> {
    const found = await latest(this.#ctx.store, deviceRepo(deviceId), 'targets');
    return found && parseMetadata('targets', found.bytes);
  }

  /**
   * Renews what nears expiry: the director root, every device's targets (same entries, next version),
   * snapshot and timestamp. Returns the number of repositories that changed.
   */
  async refreshOnline(now: Date = this.#clock.now()): Promise<number> {
    let changed = 0;
    const root = await latest(this.#ctx.store, ROOT_REPO, 'root');
    if (root) {
      const renewed = await this.#mutex.run(ROOT_REPO, async () => {
        const current = parseMetadata('root', root.bytes);
        if (
          !needsRefresh(current.signed.expires, this.#ctx.policy.directorRootSeconds, now, this.#ctx.policy)
        )
          return false;
        await this.#publishRoot(current, now);
        return true;
      });
      if (renewed) changed++;
    }
    for (const repo of await this.#ctx.store.listRepos(`${ROOT_REPO}/`)) {
      const renewed = await this.#mutex.run(repo, async () => {
        const targets = await latest(this.#ctx.store, repo, 'targets');
        if (targets) {
          const current = parseMetadata('targets', targets.bytes);
          if (
            needsRefresh(
              current.signed.expires,
              this.#ctx.policy.directorTargetsSeconds,
              now,
              this.#ctx.policy,
            )
          ) {
            await this.#publishTargets(repo, Object.values(current.signed.targets), now);
            return true;
          }
        }
        return (await refreshOnlineRoles(this.#ctx, repo, now)) !== undefined;
      });
      if (renewed) changed++;
    }
    return changed;
  }

  /** The bytes of a device's served metadata file, or undefined. */
  readFile(deviceId: string, name: string): Promise<Buffer | undefined> {
    return readServedFile(this.#ctx.store, deviceRepo(deviceId), ROOT_REPO, name);
  }
}
