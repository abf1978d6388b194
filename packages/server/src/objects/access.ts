/**
 * Who may read objects. Operators (viewer and up) read every object. A device reads only the objects
 * of the releases assigned to it: per app, the desired release, the current one and the previous
 * one (which it may roll back to) — `device_apps` rows joined to `releases`. Root ids are public
 * (the image repository's targets list every release), so knowing an id proves nothing; anything
 * else is answered as if it were not stored (404 FLT_OBJECT_MISSING), so ids cannot be probed.
 *
 * The check is set lookups: each release's objects (every id of `object_refs`, recorded when the
 * release was created) are loaded once into a sorted array of 32-byte ids and kept in a bounded LRU
 * (a release's target path names its root, so the set never goes stale); a device's releases are
 * looked up once per state version (bumped by every assignment) and kept a few seconds, so a
 * committed update's older previous release drops out soon after the report.
 */
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { FlotillaError } from '@flotilla/protocol';
import type { Clock, Db } from '../context.js';
import { reuseIfTold } from '../devices/index.js';
import type { DeviceAuth, DeviceAuthenticator } from '../devices/index.js';
import { WeightedLru } from '@flotilla/node-kit';

/** 32-bit words of a 32-byte id. */
const WORDS = 8;
const CONTENT_ID = /^[0-9a-f]{64}$/;

/** One release a device may read. */
export interface ReadableRelease {
  app: string;
  version: string;
  rootObject: string;
  targetPath: string;
}

/**
 * A release's object ids, sorted, as eight 32-bit words each (32 bytes an id): a lookup is a binary
 * search comparing numbers, no strings or buffers allocated but the key's eight words.
 */
export class IdSet {
  private constructor(
    private readonly words: Uint32Array,
    readonly size: number,
  ) {}

  /** From hex ids in any order (duplicates allowed). */
  static of(ids: readonly string[]): IdSet {
    // Hex strings sort as their big-endian words do.
    const unique = [...new Set(ids)].filter((id) => CONTENT_ID.test(id)).sort();
    const words = new Uint32Array(unique.length * WORDS);
    unique.forEach((id, i) => toWords(id, words, i * WORDS));
    return new IdSet(words, unique.length);
  }

  has(id: string): boolean {
    if (!toWords(id, KEY)) return false;
    const { words } = this;
    let lo = 0;
    let hi = this.size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = mid * WORDS;
      let order = 0;
      for (let w = 0; w < WORDS && order === 0; w++) order = KEY[w]! - words[at + w]!;
      if (order === 0) return true;
      if (order < 0) hi = mid - 1;
      else lo = mid + 1;
    }
    return false;
  }
}

/** The key of the lookup in progress (lookups are synchronous: one scratch array serves all). */
const KEY = new Uint32Array(WORDS);

/** Writes the eight words of a 64-digit lowercase hex id into `out`; false for anything else. */
function toWords(id: string, out: Uint32Array, at = 0): boolean {
  if (id.length !== WORDS * 8) return false;
  for (let w = 0; w < WORDS; w++) {
    let word = 0;
    for (let i = w * 8; i < w * 8 + 8; i++) {
      const c = id.charCodeAt(i);
      const nibble = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
      if (nibble < 0) return false;
      word = word * 16 + nibble;
    }
    out[at + w] = word;
  }
  return true;
}

/** What one device may read, for the duration of a request. */
export class DeviceScope {
  constructor(
    readonly deviceId: string,
    readonly releases: readonly ReadableRelease[],
    private readonly sets: readonly IdSet[],
  ) {}

  canRead(id: string): boolean {
    return this.sets.some((set) => set.has(id));
  }

  /** The ids of `ids` the device may not read, in order, each once. */
  unreadable(ids: Iterable<string>): string[] {
    const out = new Set<string>();
    for (const id of ids) if (!this.canRead(id)) out.add(id);
    return [...out];
  }
}

export interface ObjectAccessOptions {
  db: Db;
  clock: Clock;
  /** Most object ids held over all cached releases (default 4,000,000: 128 MB). */
  maxIds?: number;
  /** How long a device's release list is reused within one state version (default 5 s). */
  scopeTtlMs?: number;
  /** Devices whose release lists are kept (default 10,000). */
  maxDevices?: number;
}

interface CachedScope {
  stateVersion: number;
  loadedAt: number;
  scope: Promise<DeviceScope>;
}

export class ObjectAccess {
  private readonly members: WeightedLru<string, IdSet>;
  private readonly loading = new Map<string, Promise<IdSet>>();
  private readonly scopes: WeightedLru<string, CachedScope>;

  constructor(private readonly opts: ObjectAccessOptions) {
    this.members = new WeightedLru({
      weigh: (set) => Math.max(1, set.size),
      maxWeight: opts.maxIds ?? 4_000_000,
    });
    this.scopes = new WeightedLru({ weigh: () => 1, maxWeight: opts.maxDevices ?? 10_000 });
  }

  /** What `device` may read now (its release list reused within a state version for a few seconds). */
  scopeOf(device: Pick<DeviceAuth, 'deviceId' | 'stateVersion'>): Promise<DeviceScope> {
    const now = this.opts.clock.now().getTime();
    const cached = this.scopes.get(device.deviceId);
    if (
      cached &&
      cached.stateVersion === device.stateVersion &&
      now - cached.loadedAt < (this.opts.scopeTtlMs ?? 5_000)
    )
      return cached.scope;
    const scope = this.load(device.deviceId);
    scope.catch(() => this.scopes.delete(device.deviceId));
    this.scopes.set(device.deviceId, { stateVersion: device.stateVersion, loadedAt: now, scope });
    return scope;
  }

  /** Drops a device's cached release list (after its report moved current and previous). */
  forget(deviceId: string): void {
    this.scopes.delete(deviceId);
  }

  private async load(deviceId: string): Promise<DeviceScope> {
    const { db } = this.opts;
    const rows = await db
      .selectFrom('device_apps')
      .select(['desired', 'current', 'previous'])
      .where('device_id', '=', deviceId)
      .execute();
    const paths = new Set<string>();
    for (const row of rows)
      for (const path of [row.desired, row.current, row.previous]) if (path !== null) paths.add(path);
    if (paths.size === 0) return new DeviceScope(deviceId, [], []);
    const releases = (
      await db
        .selectFrom('releases')
        .select(['app', 'version', 'root_object', 'target_path'])
        .where('target_path', 'in', [...paths])
        .orderBy('target_path')
        .execute()
    ).map((r) => ({ app: r.app, version: r.version, rootObject: r.root_object, targetPath: r.target_path }));
    const sets = await Promise.all(releases.map((r) => this.idsOf(r)));
    return new DeviceScope(deviceId, releases, sets);
  }

  /** Every object id of a release (`object_refs`), loaded once and shared by concurrent requests. */
  private idsOf(release: ReadableRelease): Promise<IdSet> {
    const cached = this.members.get(release.targetPath);
    if (cached) return Promise.resolve(cached);
    let pending = this.loading.get(release.targetPath);
    if (!pending) {
      pending = this.opts.db
        .selectFrom('object_refs')
        .select('object_id')
        .where('app', '=', release.app)
        .where('version', '=', release.version)
        .execute()
        .then((rows) => {
          const set = IdSet.of(rows.map((r) => r.object_id));
          this.members.set(release.targetPath, set);
          return set;
        })
        .finally(() => this.loading.delete(release.targetPath));
      this.loading.set(release.targetPath, pending);
    }
    return pending;
  }
}

/**
 * The preHandler of the reading routes: an operator, or an accepted device with a valid token
 * (`scopeOf` then tells the route what that device may read).
 */
export interface ObjectReaders {
  preHandler: preHandlerAsyncHookHandler;
  /** Null for an operator (reads everything); the device's scope otherwise. */
  scopeOf(request: FastifyRequest): Promise<DeviceScope | null>;
}

export function objectReaders(auth: DeviceAuthenticator, access: ObjectAccess): ObjectReaders {
  return {
    async preHandler(request: FastifyRequest) {
      // The scope follows the check's state version: reused only if it read the version told.
      await auth.operatorOrAcceptedDevice(request, reuseIfTold(request));
    },
    async scopeOf(request) {
      if (request.principal?.kind === 'user') return null;
      return access.scopeOf(auth.authOf(request));
    },
  };
}

/** The answer for ids a device may not read: the same as for ids that are not stored. */
export function notStored(ids: readonly string[]): FlotillaError {
  return new FlotillaError('FLT_OBJECT_MISSING', `${ids.length} requested objects are not stored`, {
    details: { missing: ids },
  });
}
