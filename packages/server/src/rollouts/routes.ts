/** Rollout routes (docs/rollouts.md): create, preview, list, show, actions (deployer); devices and why (viewer). */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import {
  CreateRolloutRequest,
  Id,
  ReleaseVersion,
  Rollout,
  RolloutAction,
  RolloutDevicePage,
  RolloutDevicesQuery,
  RolloutList,
  RolloutListQuery,
  RolloutPreview,
  RolloutPreviewRequest,
  RolloutRoutes,
  RolloutWhy,
  ROLE_RANK,
  Type,
} from '@flotilla/protocol';
import { operatorOf, requireRole } from '../http/auth.js';
import { IdParams, namedActorOf } from '../http/route-helpers.js';
import type { RolloutServices } from './service.js';
import {
  createRollout,
  explainDevice,
  getRollout,
  listRollouts,
  previewRollout,
  rolloutAction,
  rolloutDevices,
} from './service.js';

const ActionParams = Type.Object({ id: Id, action: RolloutAction }, { additionalProperties: false });
const WhyParams = Type.Object({ id: Id, deviceId: Id }, { additionalProperties: false });
const ActionBody = Type.Union(
  [
    Type.Object(
      {
        version: Type.Optional(ReleaseVersion),
      },
      { additionalProperties: false },
    ),
    Type.Null(),
  ],
  { description: 'resume only: `{ "version": "1.4.1" }` continues with a fixed release of the same app' },
);

export function registerRolloutRoutes(base: FastifyInstance, svc: RolloutServices): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['rollouts'];

  app.post(
    RolloutRoutes.rollouts,
    {
      schema: {
        summary:
          'Start a staged rollout of a signed release to the devices a filter selects (answers at once)',
        tags,
        body: CreateRolloutRequest,
        response: { 202: Rollout },
      },
      preHandler: requireRole('deployer'),
    },
    async (request, reply) =>
      reply.code(202).send(await createRollout(svc, request.body, namedActorOf(request))),
  );

  app.post(
    RolloutRoutes.preview,
    {
      schema: {
        summary: 'How many devices a filter matches now and the size of each wave',
        tags,
        body: RolloutPreviewRequest,
        response: { 200: RolloutPreview },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => previewRollout(svc, request.body),
  );

  app.get(
    RolloutRoutes.rollouts,
    {
      schema: {
        summary: 'Rollouts, newest first (at most 1000)',
        tags,
        querystring: RolloutListQuery,
        response: { 200: RolloutList },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => listRollouts(svc, request.query.state),
  );

  app.get(
    RolloutRoutes.rollout,
    {
      schema: {
        summary: 'A rollout: state, waves with devices per phase, statistics',
        tags,
        params: IdParams,
        response: { 200: Rollout },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => getRollout(svc, request.params.id),
  );

  app.post(
    RolloutRoutes.action,
    {
      schema: {
        summary: 'Pause, resume, approve the next wave of, or abort a rollout',
        tags,
        params: ActionParams,
        body: Type.Optional(ActionBody),
        response: { 200: Rollout },
      },
      preHandler: requireRole('deployer'),
    },
    async (request) =>
      rolloutAction(
        svc,
        request.params.id,
        request.params.action,
        namedActorOf(request),
        request.body?.version !== undefined ? { version: request.body.version } : {},
      ),
  );

  app.get(
    RolloutRoutes.devices,
    {
      schema: {
        summary: "A rollout's devices by wave and phase, in pages (`after` = the last id of the page before)",
        tags,
        params: IdParams,
        querystring: RolloutDevicesQuery,
        response: { 200: RolloutDevicePage },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => rolloutDevices(svc, request.params.id, request.query),
  );

  app.get(
    RolloutRoutes.why,
    {
      schema: {
        summary: 'Where one device stands in a rollout and why, in one sentence',
        description:
          "A failed device's `logTail` (its app output, kept at the failure) only for deployers and admins.",
        tags,
        params: WhyParams,
        response: { 200: RolloutWhy },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) =>
      explainDevice(
        svc,
        request.params.id,
        request.params.deviceId,
        ROLE_RANK[operatorOf(request).role] >= ROLE_RANK.deployer,
      ),
  );
}
