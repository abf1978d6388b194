/**
 * The operator side of the image repository (protocol `TufRoutes`): the online public keys a new
 * root must name, the status with expiry warnings, and uploads of offline-signed root and targets.
 * Authentication and roles stay with the server's auth layer through the `authorize` hook.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { FlotillaError, isFlotillaError, TufRoutes } from '@flotilla/protocol';
import { parseMetadata } from '@flotilla/node-kit';
import type { TufStatus, TufSubmitResponse } from '@flotilla/protocol';
import type { ImageRepository } from './image-repository.js';
import { MAX_ROOT_BYTES, MAX_TARGETS_BYTES } from './image-repository.js';
import { isDiskFull } from '../db/errors.js';

export type TufAccess = 'read' | 'write';

export interface TufOperatorRoutesOptions {
  image: ImageRepository;
  /** Throws a FlotillaError unless the request may `read` (viewer) or `write` (admin) TUF metadata. */
  authorize: (request: FastifyRequest, access: TufAccess) => Promise<void> | void;
  /** Called after an accepted upload, e.g. to write the audit log. */
  onSubmitted?: (request: FastifyRequest, result: TufSubmitResponse) => Promise<void> | void;
}

function sendError(reply: FastifyReply, error: FlotillaError): FastifyReply {
  return reply.code(error.statusCode).send(error.toJSON());
}

/** The image repository's current state and warnings for offline roles near expiry. */
export async function tufStatus(image: ImageRepository): Promise<TufStatus> {
  const root = await image.root();
  const targets = await image.targets();
  const timestampBytes = await image.readFile('timestamp.json');
  const timestamp = timestampBytes && parseMetadata('timestamp', timestampBytes);
  const snapshotBytes =
    timestamp && (await image.readFile(`${timestamp.signed.snapshotMeta.version}.snapshot.json`));
  const snapshot = snapshotBytes && parseMetadata('snapshot', snapshotBytes);
  const state = (md: { signed: { version: number; expires: string } } | undefined) =>
    md && { version: md.signed.version, expires: md.signed.expires };
  const delegation = await image.gatewayDelegation();
  const gatewayMd = delegation && (await image.gatewayTargets());
  const gateway = delegation && {
    apps: delegation.apps,
    keyId: delegation.keyId,
    keyMatches: delegation.keyId === image.gatewayKeyId(),
    ...(gatewayMd && state(gatewayMd)),
  };
  return {
    initialized: root !== undefined,
    ...(root && { root: state(root) }),
    ...(targets && { targets: state(targets) }),
    ...(snapshot && { snapshot: state(snapshot) }),
    ...(timestamp && { timestamp: state(timestamp) }),
    ...(gateway && { gateway }),
    warnings: await image.expiryWarnings(),
  };
}

/** The Fastify plugin: `app.register(tufOperatorRoutes({ image, authorize }))`. */
export function tufOperatorRoutes(opts: TufOperatorRoutesOptions): FastifyPluginAsync {
  const guarded =
    <T>(access: TufAccess, handler: (request: FastifyRequest) => Promise<T>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        await opts.authorize(request, access);
        return reply.code(200).send(await handler(request));
      } catch (e) {
        // A full disk goes to the common error handler (507 FLT_DISK_FULL, no server paths).
        if (isFlotillaError(e) && !isDiskFull(e)) return sendError(reply, e);
        throw e;
      }
    };
  const bodyBytes = (request: FastifyRequest): Buffer => {
    if (typeof request.body !== 'object' || request.body === null)
      throw new FlotillaError('FLT_BAD_REQUEST', 'the body must be signed TUF metadata (JSON)');
    return Buffer.from(JSON.stringify(request.body));
  };
  const submitted = async (
    request: FastifyRequest,
    result: TufSubmitResponse,
  ): Promise<TufSubmitResponse> => {
    await opts.onSubmitted?.(request, result);
    return result;
  };

  return (app) => {
    app.get(
      TufRoutes.onlineKeys,
      guarded('read', () => Promise.resolve(opts.image.onlinePublicKeys())),
    );
    app.get(
      TufRoutes.status,
      guarded('read', () => tufStatus(opts.image)),
    );
    app.post(
      TufRoutes.root,
      { bodyLimit: MAX_ROOT_BYTES + 4096 },
      guarded('write', async (request) =>
        submitted(request, { role: 'root', ...(await opts.image.submitRoot(bodyBytes(request))) }),
      ),
    );
    app.post(
      TufRoutes.targets,
      { bodyLimit: MAX_TARGETS_BYTES + 4096 },
      guarded('write', async (request) => {
        const { targets, snapshot, timestamp } = await opts.image.submitTargets(bodyBytes(request));
        return submitted(request, {
          role: 'targets',
          version: targets,
          ...(snapshot !== undefined && { snapshot }),
          timestamp,
        });
      }),
    );
    return Promise.resolve();
  };
}
