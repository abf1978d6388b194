/**
 * Serves the image repository under `/tuf/image/<file>` and each device's director repository under
 * `/tuf/director/<deviceId>/<file>`. Consistent-snapshot files (`N.<role>.json`) never change and are
 * cacheable forever; `root.json` and `timestamp.json` must be revalidated on every request.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import type { DirectorRepository } from './director-repository.js';
import type { ImageRepository } from './image-repository.js';
import { isImmutableName } from './online-publisher.js';

const FILE_NAME = /^(?:root|timestamp|[1-9][0-9]{0,15}\.(?:root|snapshot|targets))\.json$/;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface TufRoutesOptions {
  image: ImageRepository;
  director: DirectorRepository;
  /**
   * Decides whether a request may read a device's director metadata (e.g. only that device's own
   * token); throw a FlotillaError to refuse. Without it the director is readable by anyone who knows
   * the device id.
   */
  authorizeDevice?: (request: FastifyRequest, deviceId: string) => Promise<void> | void;
}

function sendError(reply: FastifyReply, error: FlotillaError): FastifyReply {
  return reply.code(error.statusCode).header('cache-control', 'no-store').send(error.toJSON());
}

function sendMetadata(reply: FastifyReply, name: string, bytes: Buffer | undefined): FastifyReply {
  if (!bytes) return sendError(reply, new FlotillaError('FLT_NOT_FOUND', `no TUF metadata ${name}`));
  return reply
    .code(200)
    .header('content-type', 'application/json; charset=utf-8')
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', isImmutableName(name) ? 'public, max-age=31536000, immutable' : 'no-cache')
    .send(bytes);
}

/** The Fastify plugin: `app.register(tufRoutes({ image, director }))`. */
export function tufRoutes(opts: TufRoutesOptions): FastifyPluginAsync {
  return (app) => {
    app.get<{ Params: { file: string } }>('/tuf/image/:file', async (request, reply) => {
      const { file } = request.params;
      if (!FILE_NAME.test(file))
        return sendError(reply, new FlotillaError('FLT_NOT_FOUND', 'no such TUF metadata file'));
      return sendMetadata(reply, file, await opts.image.readFile(file));
    });

    app.get<{ Params: { deviceId: string; file: string } }>(
      '/tuf/director/:deviceId/:file',
      async (request, reply) => {
        const { deviceId, file } = request.params;
        if (!DEVICE_ID.test(deviceId) || !FILE_NAME.test(file))
          return sendError(reply, new FlotillaError('FLT_NOT_FOUND', 'no such TUF metadata file'));
        if (opts.authorizeDevice) {
          try {
            await opts.authorizeDevice(request, deviceId);
          } catch (e) {
            if (isFlotillaError(e)) return sendError(reply, e);
            throw e;
          }
        }
        return sendMetadata(reply, file, await opts.director.readFile(deviceId, file));
      },
    );
    return Promise.resolve();
  };
}
