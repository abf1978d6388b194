/** Release routes (protocol `ReleaseRoutes`) and the admin's object garbage collection. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  AppName,
  CreateReleaseRequest,
  GatewaySignatureResponse,
  GcResponse,
  OBJECT_GC_ROUTE,
  Release,
  ReleaseDiff,
  ReleaseDiffQuery,
  ReleaseList,
  ReleaseListQuery,
  ReleaseRoutes,
  ReleaseVersion,
  Type,
} from '@flotilla/protocol';
import { requireRole } from '../http/auth.js';
import { NoContent, namedActorOf } from '../http/route-helpers.js';
import { diffReleases } from './diff.js';
import type { GcJob } from './gc.js';
import { signWithGatewayRole, withdrawGatewaySignature } from './gateway-signing.js';
import { createRelease, deleteRelease, getRelease, listReleases } from './service.js';
import type { ReleaseServices } from './service.js';

const ReleaseParams = Type.Object({ app: AppName, version: ReleaseVersion }, { additionalProperties: false });
const AppParams = Type.Object({ app: AppName }, { additionalProperties: false });

export function registerReleaseRoutes(base: FastifyInstance, svc: ReleaseServices, gc: GcJob): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['releases'];
  const { ctx } = svc;

  app.post(
    ReleaseRoutes.releases,
    {
      schema: {
        summary: 'Create a release from an uploaded tree (409 listing missing objects)',
        tags,
        body: CreateReleaseRequest,
        response: { 200: Release, 201: Release },
      },
      preHandler: requireRole('deployer'),
    },
    async (request, reply) => {
      const { release, created } = await createRelease(svc, request.body, namedActorOf(request));
      return reply.code(created ? 201 : 200).send(release);
    },
  );

  const gatewayErrors =
    '409 `FLT_TUF_NOT_DELEGATED` when the offline targets do not delegate the app to the gateway role ' +
    '(`flotilla keys delegate-gateway --app APP`), 422 `FLT_TUF_KEY_MISMATCH` when the delegation names ' +
    "another key than this server's gateway key, 404 `FLT_NOT_FOUND` for an unknown release.";
  app.post(
    ReleaseRoutes.gatewaySignature,
    {
      schema: {
        summary: "Sign a release with the server's online gateway role (a delegated app only)",
        description: `Adds the release to gateway.json, the image repository's delegated targets role. ${gatewayErrors}`,
        tags,
        params: ReleaseParams,
        response: { 200: GatewaySignatureResponse },
      },
      preHandler: requireRole('admin'),
    },
    (request) => signWithGatewayRole(svc, request.params.app, request.params.version, namedActorOf(request)),
  );
  app.delete(
    ReleaseRoutes.gatewaySignature,
    {
      schema: {
        summary: "Withdraw a release from the server's online gateway role",
        description:
          'Devices can no longer verify it once withdrawn; nothing changes for a release not in gateway.json.',
        tags,
        params: ReleaseParams,
        response: { 200: GatewaySignatureResponse },
      },
      preHandler: requireRole('admin'),
    },
    (request) =>
      withdrawGatewaySignature(svc, request.params.app, request.params.version, namedActorOf(request)),
  );

  app.get(
    ReleaseRoutes.releases,
    {
      schema: {
        summary: 'List releases, newest first per app',
        tags,
        querystring: ReleaseListQuery,
        response: { 200: ReleaseList },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => ({ items: await listReleases(ctx.db, request.query.app) }),
  );

  app.get(
    ReleaseRoutes.diff,
    {
      schema: {
        summary: 'Files added, removed and modified between two releases, and what an update fetches',
        tags,
        params: AppParams,
        querystring: ReleaseDiffQuery,
        response: { 200: ReleaseDiff },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => diffReleases(svc, request.params.app, request.query.from, request.query.to),
  );

  app.get(
    ReleaseRoutes.release,
    {
      schema: { summary: 'One release', tags, params: ReleaseParams, response: { 200: Release } },
      preHandler: requireRole('viewer'),
    },
    async (request) => getRelease(ctx.db, request.params.app, request.params.version),
  );

  app.delete(
    ReleaseRoutes.release,
    {
      schema: {
        summary: 'Delete a release and its object references (refused while devices use it)',
        tags,
        params: ReleaseParams,
        response: { 204: NoContent },
      },
      preHandler: requireRole('admin'),
    },
    async (request, reply) => {
      await deleteRelease(ctx, request.params.app, request.params.version, namedActorOf(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    OBJECT_GC_ROUTE,
    {
      schema: {
        summary: 'Delete objects no release references, older than the grace period',
        tags: ['objects'],
        response: { 200: GcResponse },
      },
      preHandler: requireRole('admin'),
    },
    async (request) => {
      const result = await gc.runOnce();
      const actor = namedActorOf(request);
      await ctx.audit.record({
        actorType: 'user',
        actorId: actor.userId,
        action: 'objects.gc',
        subjectType: 'objects',
        subjectId: 'store',
        sourceIp: actor.sourceIp,
        details: { deleted: result.deleted.length, bytes: result.bytes, kept: result.kept },
      });
      return result;
    },
  );
}
