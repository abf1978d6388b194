/**
 * Serves the image repository under `/tuf/image/<file>` and each device's director repository under
 * `/tuf/director/<deviceId>/<file>`, and the image repository's targets (each release's root object)
 * under `/tuf/image/targets/<app>/<version>/<sha256>.<rootObjectId>`, the consistent-snapshot name
 * every TUF client (python-tuf's ngclient, tuf-js) builds (TUF spec 5.7.3). Every file needs the
 * caller's credentials (`authorizeImage`, `authorizeDevice`). Consistent-snapshot files and targets
 * never change and are cacheable forever by the client (never by a shared cache: they are not public);
 * `root.json` and `timestamp.json` must be revalidated on every request.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { FlotillaError, TufRoutes, isFlotillaError } from '@flotilla/protocol';
import type { TargetFile } from '@tufjs/models';
import type { DirectorRepository } from './director-repository.js';
import type { ImageRepository } from './image-repository.js';
import { isImmutableName } from './online-publisher.js';

const FILE_NAME = /^(?:root|timestamp|[1-9][0-9]{0,15}\.(?:root|snapshot|targets|gateway))\.json$/;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** A target's last path segment: the root object id, optionally prefixed by its SHA-256 (consistent snapshots). */
const TARGET_FILE = /^(?:([0-9a-f]{64})\.)?([0-9a-f]{64})$/;

export interface TufRoutesOptions {
  image: ImageRepository;
  director: DirectorRepository;
  /**
   * Decides whether a request may read the image repository (metadata and targets); throw a
   * FlotillaError to refuse. Runs before anything is looked up, so a refused caller learns nothing
   * about which files exist.
   */
  authorizeImage: (request: FastifyRequest) => Promise<void> | void;
  /**
   * Decides whether a request may read a device's director metadata (e.g. only that device's own
   * token); throw a FlotillaError to refuse. Without it the director is readable by anyone who knows
   * the device id.
   */
  authorizeDevice?: (request: FastifyRequest, deviceId: string) => Promise<void> | void;
  /** The bytes of a target of the image repository (a release's root object), or undefined if not stored. */
  targetBytes: (target: TargetFile, request: FastifyRequest) => Promise<Uint8Array | undefined>;
}

function sendError(reply: FastifyReply, error: FlotillaError): FastifyReply {
  void reply.code(error.statusCode).header('cache-control', 'no-store');
  if (error.statusCode === 401) void reply.header('www-authenticate', 'Bearer realm="flotilla"');
  return reply.send(error.toJSON());
}

const notFound = (what: string) => new FlotillaError('FLT_NOT_FOUND', what);

/** Files for one requester only: a browser or client may keep them, a shared cache may not. */
const IMMUTABLE = 'private, max-age=31536000, immutable';

function sendMetadata(reply: FastifyReply, name: string, bytes: Buffer | undefined): FastifyReply {
  if (!bytes) return sendError(reply, notFound(`no TUF metadata ${name}`));
  return reply
    .code(200)
    .header('content-type', 'application/json; charset=utf-8')
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', isImmutableName(name) ? IMMUTABLE : 'private, no-cache')
    .send(bytes);
}

/** Runs `authorize` and then `handle`; a FlotillaError from either becomes the error envelope. */
async function guarded(
  reply: FastifyReply,
  authorize: () => Promise<void> | void,
  handle: () => Promise<FastifyReply>,
): Promise<FastifyReply> {
  try {
    await authorize();
    return await handle();
  } catch (e) {
    if (isFlotillaError(e)) return sendError(reply, e);
    throw e;
  }
}

const metadataBody = {
  description: 'Signed TUF metadata, served byte for byte as stored',
  content: { 'application/json': { schema: { type: 'object' } } },
};
const refused = {
  401: 'No credentials, or a bad or expired token (`FLT_UNAUTHENTICATED`, `FLT_TOKEN_INVALID`, `FLT_TOKEN_EXPIRED`)',
  403: 'A device that is pending, rejected or revoked (`FLT_DEVICE_*`)',
  404: 'No such file (`FLT_NOT_FOUND`)',
};
const errorResponses = (entries: Record<number, string>) =>
  Object.fromEntries(
    Object.entries(entries).map(([status, description]) => [status, { description, $ref: 'ErrorEnvelope#' }]),
  );
const imageAccess =
  'Needs an operator (API token `flt_at_…` of any role, or the web session) or an accepted device ' +
  '(`Authorization: Bearer flt_dt_…`).';

/** The Fastify plugin: `app.register(tufRoutes({ image, director, authorizeImage, targetBytes }))`. */
export function tufRoutes(opts: TufRoutesOptions): FastifyPluginAsync {
  return (app) => {
    app.get<{ Params: { file: string } }>(
      TufRoutes.imageFile,
      {
        schema: {
          summary:
            'Image repository metadata: root.json, timestamp.json, N.root.json, N.snapshot.json, N.targets.json',
          description: imageAccess,
          tags: ['tuf'],
          response: {
            200: metadataBody,
            ...errorResponses(refused),
          },
        },
      },
      (request, reply) =>
        guarded(
          reply,
          () => opts.authorizeImage(request),
          async () => {
            const { file } = request.params;
            if (!FILE_NAME.test(file)) throw notFound('no such TUF metadata file');
            return sendMetadata(reply, file, await opts.image.readFile(file));
          },
        ),
    );

    app.get<{ Params: { app: string; version: string; file: string } }>(
      TufRoutes.imageTarget,
      {
        schema: {
          summary:
            "A target of the image repository: a release's root object, at <app>/<version>/<sha256>.<rootObjectId> " +
            '(consistent snapshots) or <app>/<version>/<rootObjectId>',
          description: `${imageAccess} Only targets of the current image targets metadata are served.`,
          tags: ['tuf'],
          response: {
            200: {
              description: "The root object's bytes; their length and SHA-256 are the signed target's",
              content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
            },
            ...errorResponses(refused),
          },
        },
      },
      (request, reply) =>
        guarded(
          reply,
          () => opts.authorizeImage(request),
          async () => {
            const { app: appName, version, file } = request.params;
            const m = TARGET_FILE.exec(file);
            const rootObject = m?.[2];
            if (!rootObject) throw notFound('no such target');
            const target = await opts.image.target(`${appName}/${version}/${rootObject}`);
            if (!target) throw notFound('no such target in the image repository');
            const prefix = m[1];
            if (prefix !== undefined && target.hashes.sha256 !== prefix)
              throw notFound('no such target in the image repository');
            const bytes = await opts.targetBytes(target, request);
            if (!bytes) throw notFound(`the root object of ${target.path} is not stored`);
            return reply
              .code(200)
              .header('content-type', 'application/octet-stream')
              .header('x-content-type-options', 'nosniff')
              .header('cache-control', IMMUTABLE)
              .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
          },
        ),
    );

    app.get<{ Params: { deviceId: string; file: string } }>(
      TufRoutes.directorFile,
      {
        schema: {
          summary:
            "A device's director metadata: root.json, timestamp.json, N.root.json, N.snapshot.json, N.targets.json",
          description:
            "Needs that device's own token, or an operator (viewer and up). A device may send " +
            '`x-flotilla-state-version: <N>`, the newest state version it was told: its token check ' +
            'may then be reused from the last few seconds if that check read N or a newer version ' +
            '(docs/devices.md "Director reads"); an absent or malformed value means a check every time.',
          tags: ['tuf'],
          response: {
            200: metadataBody,
            ...errorResponses({ ...refused, 403: 'Another device, or a device that is not accepted' }),
          },
        },
      },
      (request, reply) => {
        const { deviceId, file } = request.params;
        if (!DEVICE_ID.test(deviceId) || !FILE_NAME.test(file))
          return sendError(reply, notFound('no such TUF metadata file'));
        return guarded(
          reply,
          () => opts.authorizeDevice?.(request, deviceId),
          async () => sendMetadata(reply, file, await opts.director.readFile(deviceId, file)),
        );
      },
    );
    return Promise.resolve();
  };
}
