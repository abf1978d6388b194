/**
 * The image routes as a Fastify plugin. The gateway never imports the server: the host passes
 * how to tell the operator of a request and its source address (docs/gateway.md "Where the
 * gateway plugs in"). Thin handlers over GatewayService.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  FlotillaError,
  Id,
  Image,
  ImageJob,
  ImageList,
  ImageListQuery,
  ImageLookupResponse,
  ImagePlatformList,
  ImageQuery,
  ImageRoutes,
  PullImageRequest,
  PullImageResponse,
  Type,
} from '@flotilla/protocol';
import type { Caller, GatewayService } from '../service/images.js';
import type { Operator } from '../service/access.js';

export interface RouteHost {
  /** The signed-in operator of the request, or null. */
  operatorOf(request: FastifyRequest): Operator | null;
  sourceAddress(request: FastifyRequest): string;
}

export function registerImageRoutes(base: FastifyInstance, service: GatewayService, host: RouteHost): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['images'];
  const caller = (request: FastifyRequest): Caller => {
    const op = host.operatorOf(request);
    if (op === null) throw new FlotillaError('FLT_UNAUTHENTICATED', 'sign in or send an API token');
    return { ...op, sourceIp: host.sourceAddress(request) };
  };

  app.post(
    ImageRoutes.pull,
    {
      schema: {
        summary:
          'Import an image onto a platform (200: already converted; 202: queued, or shares a running job)',
        tags,
        body: PullImageRequest,
        response: { 200: PullImageResponse, 202: PullImageResponse },
      },
    },
    async (request, reply) => {
      const { answer } = await service.pull(request.body, caller(request));
      return reply.status(answer.job === null ? 200 : 202).send(answer);
    },
  );

  app.get(
    ImageRoutes.images,
    {
      schema: {
        summary: 'Images the caller may see, with when each expires',
        tags,
        querystring: ImageListQuery,
        response: { 200: ImageList },
      },
    },
    async (request) => ({ items: await service.list(request.query.platform, caller(request)) }),
  );

  app.get(
    ImageRoutes.show,
    {
      schema: {
        summary: 'One image (does not count as use)',
        tags,
        querystring: ImageQuery,
        response: { 200: Image },
      },
    },
    async (request) => service.show(request.query, caller(request)),
  );

  app.get(
    ImageRoutes.lookup,
    {
      schema: {
        summary: "A ready image's id and path on its platform; counts as use (resets its expiry)",
        tags,
        querystring: ImageQuery,
        response: { 200: ImageLookupResponse },
      },
    },
    async (request) => service.lookup(request.query, caller(request)),
  );

  app.delete(
    ImageRoutes.images,
    {
      schema: {
        summary: 'Remove an image from its platform and the cache (server or platform admins)',
        tags,
        querystring: ImageQuery,
        response: { 204: Type.Null({ description: 'No content' }) },
      },
    },
    async (request, reply) => {
      await service.remove(request.query, caller(request));
      return reply.status(204).send(null);
    },
  );

  app.get(
    ImageRoutes.job,
    {
      schema: {
        summary: 'An import job: state, phase, progress, attempts',
        tags,
        params: Type.Object({ id: Id }, { additionalProperties: false }),
        response: { 200: ImageJob },
      },
    },
    async (request) => service.job(request.params.id, caller(request)),
  );

  app.get(
    ImageRoutes.platforms,
    { schema: { summary: 'Configured platforms', tags, response: { 200: ImagePlatformList } } },
    (request) => {
      caller(request);
      return { items: service.platforms() };
    },
  );
}
