/**
 * Delta routes: file deltas for devices and operators (`POST /api/v1/objects/deltas`, protocol
 * `ObjectRoutes.deltas`) and the operator's precomputation between two releases
 * (`POST /api/v1/releases/:app/:version/deltas`, deployer, audited).
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  AppName,
  DELTA_PACK_CONTENT_TYPE,
  DeltaRequest,
  ObjectRoutes,
  PrecomputeDeltasRequest,
  PrecomputeDeltasResponse,
  RELEASE_DELTAS_ROUTE,
  ReleaseVersion,
  Type,
} from '@flotilla/protocol';
import { requireRole } from '../http/auth.js';
import { actorOf } from '../http/route-helpers.js';
import type { ObjectReaders } from '../objects/access.js';
import { precomputeForOperator } from './precompute.js';
import type { DeltaPrecomputeServices } from './precompute.js';
import { deltaPack } from './serve.js';
import type { DeltaServing } from './serve.js';

export interface DeltaRoutesOptions {
  serving: DeltaServing;
  precompute: DeltaPrecomputeServices;
  /** Operators read every object; a device only those of its releases (objects/access.ts). */
  readers: ObjectReaders;
}

const ReleaseParams = Type.Object({ app: AppName, version: ReleaseVersion }, { additionalProperties: false });

export function registerDeltaRoutes(base: FastifyInstance, opts: DeltaRoutesOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const { readers } = opts;

  app.post(
    ObjectRoutes.deltas,
    {
      schema: {
        summary:
          `File deltas (${DELTA_PACK_CONTENT_TYPE}): per (target, base) file pair, in request order, a zstd ` +
          'frame of the target rebuilt against the base (zstd --patch-from), or "none" (fetch its chunks); ' +
          'unknown ids (for a device, also ids of releases not assigned to it) are a 404 listing them, ' +
          'ids that are not file objects a 400; for a device, a pair that is no file pair of its update ' +
          '(same path, between two of its releases) is answered "none"',
        tags: ['objects'],
        body: DeltaRequest,
        response: {
          200: {
            description: 'The delta pack, streamed as each record is ready',
            content: {
              [DELTA_PACK_CONTENT_TYPE]: {
                schema: Type.Unsafe<Readable>({ type: 'string', format: 'binary' }),
              },
            },
          },
        },
      },
      preHandler: readers.preHandler,
    },
    async (request, reply) => {
      const stream = await deltaPack(opts.serving, request.body.pairs, await readers.scopeOf(request));
      stream.on('error', (err) =>
        request.log.error({ err }, 'delta pack stream failed; the client sees a truncated pack'),
      );
      return reply.type(DELTA_PACK_CONTENT_TYPE).header('cache-control', 'no-store').send(stream);
    },
  );

  app.post(
    RELEASE_DELTAS_ROUTE,
    {
      schema: {
        summary:
          'Precompute the file deltas from release `from` to this one (like ostree static-delta generate): ' +
          'files paired by path, every pair whose object differs computed into the delta cache',
        tags: ['releases'],
        params: ReleaseParams,
        body: PrecomputeDeltasRequest,
        response: { 200: PrecomputeDeltasResponse },
      },
      preHandler: requireRole('deployer'),
    },
    async (request) => {
      const { app: appName, version } = request.params;
      const result = await precomputeForOperator(
        opts.precompute,
        appName,
        request.body.from,
        version,
        actorOf(request),
      );
      request.log.info(result, 'release deltas precomputed');
      return result;
    },
  );
}
