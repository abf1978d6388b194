/**
 * What the server does for the image gateway's `fleet` platforms (docs/gateway.md "Fleet
 * platforms"), lent to it through the extension point: an image's release tree, already built into
 * the server's object store, becomes a release (runtime `files`), is signed by the online gateway
 * role (only for an app the offline targets key delegated to it) and is deployed to the devices the
 * platform's filter selects through the ordinary deployment path. Withdrawing (image expiry) takes
 * the release back from the devices still assigned it and removes it from the gateway role.
 */
import type { CreateReleaseRequest } from '@flotilla/protocol';
import type { ObjectSink } from '@flotilla/store';
import type { ObjectStore } from '../objects/store.js';
import { lockRows, writeTransaction } from '../db/write-transaction.js';
import { signWithGatewayRole, withdrawGatewaySignature } from '../releases/gateway-signing.js';
import { createRelease, getRelease } from '../releases/service.js';
import type { Creator } from '../releases/service.js';
import { revertAppToCurrent } from './assign.js';
import type { AssignedDevice } from './assign.js';
import type { DeploymentJobs } from './jobs.js';
import { deploy } from './service.js';
import type { DeployServices } from './service.js';

export interface FleetPublishInput {
  app: string;
  version: string;
  /** The release tree's root directory object, already in the server's object store. */
  rootObject: string;
  /** RSQL device filter selecting the platform's devices (the language of `flotilla devices ls --filter`). */
  filter: string;
  actor: { userId: string; username: string };
}

export interface FleetPublished {
  targetPath: string;
  deployment: string;
  devices: number;
}

/** The server side of `fleet` platforms (ExtensionHost.fleet). */
export interface GatewayFleet {
  /** Where a fleet image's release tree is built: the server's object store. */
  readonly objects: ObjectSink;
  /** Release, gateway signature and deployment of a tree (FLT_TUF_NOT_DELEGATED when the app is not delegated). */
  publish(input: FleetPublishInput): Promise<FleetPublished>;
  /** Takes app@version back from the devices still assigned it, then withdraws its gateway signature. */
  withdraw(input: {
    app: string;
    version: string;
    actor: { userId: string; username: string };
  }): Promise<void>;
}

/** An ObjectSink over the server's store (what `buildTree` writes to). */
function sinkOf(store: ObjectStore): ObjectSink {
  return {
    has: (id) => store.has(id),
    putChunk: (id, bytes) => store.put(id, bytes),
    putObject: (id, bytes) => store.put(id, bytes),
  };
}

export function gatewayFleet(
  svc: DeployServices & { store: ObjectStore; jobs: DeploymentJobs },
): GatewayFleet {
  const { ctx } = svc;
  // The gateway knows who pulled an image by name; audit entries and deployments name users by id.
  const creatorOf = async (actor: { userId: string; username: string }): Promise<Creator> => {
    const user = await ctx.db
      .selectFrom('users')
      .select('id')
      .where('username', '=', actor.username)
      .executeTakeFirst();
    return { userId: user?.id ?? actor.userId, username: actor.username, sourceIp: null };
  };
  return {
    objects: sinkOf(svc.store),
    async publish(input) {
      const creator = await creatorOf(input.actor);
      const request: CreateReleaseRequest = {
        app: input.app,
        version: input.version,
        runtime: 'files',
        rootObject: input.rootObject,
        config: {},
      };
      await createRelease({ ctx, store: svc.store, trust: svc.trust }, request, creator);
      await signWithGatewayRole(
        { ctx, store: svc.store, trust: svc.trust },
        input.app,
        input.version,
        creator,
      );
      const deployed = await deploy(
        svc,
        { app: input.app, version: input.version, filter: input.filter },
        creator,
      );
      return {
        targetPath: (await getRelease(ctx.db, input.app, input.version)).targetPath,
        deployment: deployed.deployment.id,
        devices: deployed.devices.length,
      };
    },
    async withdraw(input) {
      const release = await getRelease(ctx.db, input.app, input.version);
      const creator = await creatorOf(input.actor);
      const now = ctx.clock.now().toISOString();
      const changed = await writeTransaction(ctx.db, ctx.dialect, async (trx) => {
        const rows = await trx
          .selectFrom('device_apps')
          .select(['device_id'])
          .where('app', '=', input.app)
          .where('desired', '=', release.targetPath)
          .orderBy('device_id')
          .execute();
        const ids = rows.map((r) => r.device_id);
        if (ids.length === 0) return [];
        await lockRows(
          trx.selectFrom('devices').select('id').where('id', 'in', ids).orderBy('id'),
          ctx.dialect,
        ).execute();
        const out: AssignedDevice[] = [];
        for (const deviceId of ids) {
          const row = await trx
            .selectFrom('device_apps')
            .select(['current', 'desired'])
            .where('device_id', '=', deviceId)
            .where('app', '=', input.app)
            .executeTakeFirst();
          if (row?.desired !== release.targetPath) continue;
          // Back to what the device runs, or the app is no longer assigned (the director stops naming it).
          const current = row.current === release.targetPath ? null : row.current;
          const stateVersion = await revertAppToCurrent(trx, deviceId, input.app, current, now);
          out.push({ deviceId, stateVersion });
        }
        await ctx.audit.record(
          {
            actorType: 'user',
            actorId: creator.userId,
            action: 'deployment.withdraw',
            subjectType: 'release',
            subjectId: `${input.app}@${input.version}`,
            sourceIp: null,
            details: { targetPath: release.targetPath, devices: out.map((d) => d.deviceId) },
          },
          trx,
        );
        return out;
      });
      // The director metadata must stop naming the release before its gateway signature goes.
      await svc.jobs.announce(changed);
      await withdrawGatewaySignature(
        { ctx, store: svc.store, trust: svc.trust },
        input.app,
        input.version,
        creator,
      );
    },
  };
}
