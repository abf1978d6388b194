/**
 * Wires the TUF layer into the server: metadata under `<dataDir>/tuf`, online keys under
 * `<dataDir>/tuf-keys`, the image repository and the per-device director, their routes, metrics
 * and refresher. With `allowServerSideSigning` (single-machine convenience mode) the server also
 * holds offline root and targets keys under `<dataDir>/tuf-offline` and signs releases itself.
 */
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FlotillaError, ROLE_RANK, isFlotillaError } from '@flotilla/protocol';
import { generateEd25519, readKeyFile, writeKeyFile } from '@flotilla/node-kit';
import type { TufSubmitResponse } from '@flotilla/protocol';
import type { Signer } from '@flotilla/node-kit';
import type { TargetFile } from '@tufjs/models';
import type { ServerContext } from '../context.js';
import { reuseIfTold } from '../devices/index.js';
import type { DeviceAuth, DeviceAuthenticator } from '../devices/index.js';
import { sourceAddress } from '../http/source-address.js';
import {
  DirectorRepository,
  FsMetadataStore,
  RoutedMetadataStore,
  SqliteMetadataStore,
  ImageRepository,
  expiryPolicy,
  initLocalTrust,
  loadOrCreateOnlineKeys,
  registerTufMetrics,
  signReleaseLocally,
  startTufRefresher,
  tufOperatorRoutes,
  tufRoutes,
} from '../tuf/index.js';
import type { LocalOfflineKeys } from '../tuf/index.js';
import type { ObjectStore } from '../objects/store.js';

export interface Trust {
  image: ImageRepository;
  director: DirectorRepository;
  /** Signs a release target with the server-held offline key; null unless `allowServerSideSigning`. */
  signLocally: ((target: TargetFile) => Promise<void>) | null;
  /** Closes the devices' director metadata database (at the server's close). */
  close: () => Promise<void>;
}

export interface TrustOptions {
  deviceAuth: DeviceAuthenticator;
  /** Whether a device may read an object (issue 13: only objects of releases assigned to it). */
  deviceMayRead: (device: DeviceAuth, objectId: string) => Promise<boolean>;
  /** Where the image repository's targets (releases' root objects) are read from. */
  store: ObjectStore;
  /** Called after root or targets metadata was accepted (recompute the releases' signed flags). */
  onTargetsChanged: (image: ImageRepository) => Promise<unknown>;
  /**
   * Before a device's director metadata is served: bring it up to date with its assignments.
   * `stateVersion`: the device's, as its own token's check just read it (undefined for an operator).
   */
  beforeDirectorRead: (deviceId: string, stateVersion: number | undefined) => Promise<void>;
}

/** The repositories and keys under the data directory (no routes: `registerTrustRoutes` adds those). */
export async function createTrust(ctx: ServerContext): Promise<Trust> {
  const { dataDir } = ctx.config;
  const files = FsMetadataStore.open(join(dataDir, 'tuf'));
  // The devices' director metadata: one SQLite file, not three files per device and re-sign.
  const devices = SqliteMetadataStore.open(join(dataDir, 'tuf', 'director.sqlite'));
  const moved = await devices.importFrom(join(dataDir, 'tuf'));
  if (moved > 0) ctx.log.info({ devices: moved }, 'director metadata files moved into tuf/director.sqlite');
  const store = new RoutedMetadataStore(files, devices);
  const keys = await loadOrCreateOnlineKeys(join(dataDir, 'tuf-keys'));
  const policy = expiryPolicy();
  const image = new ImageRepository({ store, keys, policy, clock: ctx.clock });
  const director = new DirectorRepository({ store, keys, policy, clock: ctx.clock, image });

  let signLocally: Trust['signLocally'] = null;
  if (ctx.config.allowServerSideSigning) {
    ctx.log.warn(
      'allowServerSideSigning is on: this server holds the offline root and targets keys and signs releases ' +
        'itself, so a compromise of this server can make devices run anything (docs/security.md)',
    );
    const offline = await loadOfflineKeys(join(dataDir, 'tuf-offline'));
    await initLocalTrust(image, offline, ctx.clock);
    signLocally = async (target) => {
      await signReleaseLocally(image, offline, target, ctx.clock);
    };
  }
  return { image, director, signLocally, close: () => devices.close() };
}

/** The TUF routes (image repository, per-device director, operator submissions), metrics and refresher. */
export async function registerTrustRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  trust: Trust,
  opts: TrustOptions,
): Promise<void> {
  const { image, director } = trust;
  await app.register(
    tufRoutes({
      image,
      director,
      // The same metadata for every device: a token checked up to DEVICE_AUTH_CACHE_MS ago will do.
      authorizeImage: async (request) => {
        await opts.deviceAuth.operatorOrAcceptedDevice(request, { cached: true });
      },
      targetBytes: async (target, request) => {
        const id = target.hashes.sha256;
        if (id === undefined) return undefined;
        // A device gets the root object of its own releases only, answered as if others were absent.
        const device = await opts.deviceAuth.operatorOrAcceptedDevice(request, reuseIfTold(request));
        if (device !== null && !(await opts.deviceMayRead(device, id))) return undefined;
        return (await opts.store.has(id)) ? opts.store.getObject(id) : undefined;
      },
      authorizeDevice: async (request, deviceId) => {
        const device = await authorizeDirectorRead(ctx, request, deviceId, opts.deviceAuth);
        // Devices accepted before any deployment get empty targets on first read (idempotent).
        await director.initDevice(deviceId);
        await opts.beforeDirectorRead(deviceId, device?.stateVersion);
      },
    }),
  );
  await app.register(
    tufOperatorRoutes({
      image,
      authorize: (request, access) => requireOperator(request, access === 'read' ? 'viewer' : 'admin'),
      onSubmitted: async (request, result) => {
        await auditSubmission(ctx, request, result);
        await opts.onTargetsChanged(image);
      },
    }),
  );
  registerTufMetrics(ctx.metrics, image, ctx.clock);
  const refresher = startTufRefresher({ image, director, log: ctx.log });
  app.addHook('preClose', () => refresher.stop());
}

function requireOperator(request: FastifyRequest, role: 'viewer' | 'admin'): void {
  const p = request.principal;
  if (p?.kind !== 'user') throw new FlotillaError('FLT_UNAUTHENTICATED', 'sign in or send an API token');
  if (ROLE_RANK[p.role] < ROLE_RANK[role])
    throw new FlotillaError('FLT_FORBIDDEN', `this action needs the ${role} role (you are ${p.role})`);
}

/**
 * A device reads only its own director metadata; operators (viewer and up) read that of any device
 * that exists: a repository is created (and signed) only for an enrolled device, never for an id
 * made up in a URL. Returns the device's authentication (null for an operator).
 */
async function authorizeDirectorRead(
  ctx: ServerContext,
  request: FastifyRequest,
  deviceId: string,
  deviceAuth: DeviceAuthenticator,
): Promise<DeviceAuth | null> {
  // A check that read the state version the device was told about (or a newer one) will do.
  const device = await deviceAuth.operatorOrAcceptedDevice(request, reuseIfTold(request));
  if (device === null) {
    const exists = await ctx.db
      .selectFrom('devices')
      .select('id')
      .where('id', '=', deviceId)
      .executeTakeFirst();
    if (!exists) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${deviceId}`);
    return null;
  }
  if (device.deviceId !== deviceId)
    throw new FlotillaError('FLT_FORBIDDEN', 'a device may read only its own director metadata');
  return device;
}

async function auditSubmission(ctx: ServerContext, request: FastifyRequest, result: TufSubmitResponse) {
  const p = request.principal;
  await ctx.audit.record({
    actorType: 'user',
    actorId: p?.kind === 'user' ? p.userId : 'unknown',
    action: `tuf.${result.role}.submit`,
    subjectType: 'tuf',
    subjectId: `image/${result.role}`,
    sourceIp: sourceAddress(request),
    details: { ...result },
  });
}

async function loadOfflineKeys(dir: string): Promise<LocalOfflineKeys> {
  const load = async (role: 'root' | 'targets'): Promise<Signer> => {
    const path = join(dir, `${role}.key.json`);
    try {
      return (await readKeyFile(path)).signer;
    } catch (e) {
      if (!isFlotillaError(e) || e.code !== 'FLT_NOT_FOUND') throw e;
    }
    try {
      return (await writeKeyFile(path, { role, privateKeyPem: generateEd25519().privateKeyPem })).signer;
    } catch (e) {
      if (isFlotillaError(e) && e.code === 'FLT_CONFLICT') return (await readKeyFile(path)).signer;
      throw e;
    }
  };
  return { root: await load('root'), targets: await load('targets') };
}
