/**
 * Object routes (protocol `ObjectRoutes`): which objects are missing, pack upload (deployer), per-object
 * GET (immutable, Range-capable, for proxies and CDNs), batched pack download, a release tree's
 * objects in one pack (tree pack), for operators and accepted devices. A device reads only the
 * objects of releases assigned to it (access.ts); anything else is answered as if it were not
 * stored. File deltas are the deltas module's (deltas/routes.ts).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  FRAME_CONTENT_TYPE,
  FlotillaError,
  MissingObjectsResponse,
  ObjectIdList,
  ObjectRoutes,
  PACK_CODEC_HEADER,
  PACK_CONTENT_TYPE,
  PackRequest,
  Sha256Hex,
  TreePackRequest,
  Type,
  UploadResponse,
  isFlotillaError,
} from '@flotilla/protocol';
import { readAhead } from '@flotilla/node-kit';
import { requireRole } from '../http/auth.js';
import { notStored } from './access.js';
import type { ObjectReaders } from './access.js';
import type { ObjectMetrics } from './metrics.js';
import { packStream, parseCodec } from './pack.js';
import type { PackRecord } from './pack.js';
import { parseRange } from './range.js';
import type { ObjectStore } from './store.js';
import { treePackIds } from './tree-closures.js';
import type { Closure, TreeClosures } from './tree-closures.js';
import { receivePack } from './upload.js';

export interface ObjectRoutesOptions {
  store: ObjectStore;
  metrics: ObjectMetrics;
  /** Operators read every object; a device only those of its releases (access.ts). */
  readers: ObjectReaders;
  maxUploadBytes: number;
  treeClosures: TreeClosures;
}

const IMMUTABLE = 'public, max-age=31536000, immutable';
const ObjectParams = Type.Object({ id: Sha256Hex }, { additionalProperties: false });
/** How many objects a pack's stream reads ahead of what it has sent. */
const PACK_READ_AHEAD = 8;
/** A tree-pack body is a root and at most 16 ids: anything near this is not one. */
const TREE_PACK_BODY_LIMIT = 16 * 1024;
const PackBody = Type.Unsafe<Readable>({ type: 'string', format: 'binary' });

/** Registers the object routes in their own scope (the pack body parser stays local to them). */
export async function registerObjectRoutes(base: FastifyInstance, opts: ObjectRoutesOptions): Promise<void> {
  await base.register((scope, _options, done) => {
    scope.addContentTypeParser(PACK_CONTENT_TYPE, (_request, payload, next) => next(null, payload));
    routes(scope, opts);
    done();
  });
}

function routes(base: FastifyInstance, opts: ObjectRoutesOptions): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const { store, metrics } = opts;
  const tags = ['objects'];
  const { readers } = opts;
  const reader = readers.preHandler;

  app.post(
    ObjectRoutes.missing,
    {
      schema: {
        summary: 'Which of these objects does the server lack?',
        tags,
        body: ObjectIdList,
        response: { 200: MissingObjectsResponse },
      },
      preHandler: requireRole('deployer'),
    },
    async (request) => ({ missing: await store.missing(request.body.ids) }),
  );

  app.post(
    ObjectRoutes.upload,
    {
      schema: {
        summary: `Upload a pack (${PACK_CONTENT_TYPE}); every record is verified by hash before it is stored`,
        tags,
        headers: Type.Object({ [PACK_CODEC_HEADER]: Type.Optional(Type.String()) }),
        response: { 200: UploadResponse },
      },
      preHandler: requireRole('deployer'),
    },
    async (request, reply) => {
      const body: unknown = request.body;
      if (!(body instanceof Readable))
        throw new FlotillaError('FLT_UNSUPPORTED_MEDIA_TYPE', `send the pack as ${PACK_CONTENT_TYPE}`);
      const codec = parseCodec(request.headers[PACK_CODEC_HEADER]);
      // A refused upload may leave bytes unread; never keep such a connection for another request.
      const result = await receivePack(body, codec, { store, metrics, maxBytes: opts.maxUploadBytes }).catch(
        (error: unknown) => {
          void reply.header('connection', 'close');
          throw error;
        },
      );
      request.log.info({ ...result, codec }, 'pack received');
      return result;
    },
  );

  app.get(
    ObjectRoutes.object,
    {
      schema: {
        summary:
          `One object's stored frame (${FRAME_CONTENT_TYPE}); immutable, Range-capable. A device reads ` +
          'only objects of releases assigned to it (desired, current, previous); others are a 404',
        tags,
        params: ObjectParams,
      },
      preHandler: reader,
    },
    async (request, reply) => {
      const { id } = request.params;
      const scope = await readers.scopeOf(request);
      if (scope && !scope.canRead(id))
        throw new FlotillaError('FLT_OBJECT_MISSING', `no object or chunk ${id} in the store`, {
          details: { id },
        });
      const etag = `"${id}"`;
      void reply
        .header('etag', etag)
        .header('cache-control', IMMUTABLE)
        .header('accept-ranges', 'bytes')
        .header('x-content-type-options', 'nosniff');
      if (request.headers['if-none-match']?.split(',').some((t) => t.trim().replace(/^W\//, '') === etag))
        return reply.code(304).send();
      const frame = await store.get(id);
      const range = parseRange(request.headers.range, frame.length);
      if (range.kind === 'unsatisfiable')
        return reply
          .code(416)
          .header('content-range', `bytes */${frame.length}`)
          .send(new FlotillaError('FLT_BAD_REQUEST', 'the requested range is outside the object').toJSON());
      const body = range.kind === 'partial' ? frame.subarray(range.start, range.end + 1) : frame;
      metrics.objectsServed.inc({ via: 'object' });
      metrics.bytesServed.inc({ via: 'object' }, body.length);
      void reply.type(FRAME_CONTENT_TYPE);
      if (range.kind === 'partial')
        void reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${frame.length}`);
      return reply.send(body);
    },
  );

  app.post(
    ObjectRoutes.pack,
    {
      schema: {
        summary:
          'Objects as one pack stream, compressed as a whole, or (codec `frames`) each record the ' +
          'stored frame of its object as the per-object GET serves it; unknown ids (for a device, also ids of ' +
          'releases not assigned to it) are a 404 listing them',
        tags,
        body: PackRequest,
      },
      preHandler: reader,
    },
    async (request, reply) => {
      const ids = [...new Set(request.body.ids)];
      const scope = await readers.scopeOf(request);
      const unreadable = scope ? scope.unreadable(ids) : [];
      const hidden = new Set(unreadable);
      const missing = [...unreadable, ...(await store.missing(ids.filter((id) => !hidden.has(id))))];
      if (missing.length > 0) throw notStored(missing);
      const codec = request.body.codec ?? 'zstd';
      // `frames`: the stored frames as they are (nothing decompressed, nothing compressed again).
      const frames = codec === 'frames';
      async function* records(): AsyncGenerator<PackRecord> {
        const read = async (id: string): Promise<PackRecord> => ({
          id,
          bytes: frames ? await store.get(id) : Buffer.from(await store.getObject(id)),
        });
        for await (const record of readAhead(ids, read, PACK_READ_AHEAD)) {
          metrics.objectsServed.inc({ via: 'pack' });
          metrics.bytesServed.inc({ via: 'pack' }, record.bytes.length);
          yield record;
        }
      }
      const stream = packStream(records(), codec);
      stream.on('error', (err) =>
        request.log.error({ err }, 'pack stream failed; the client sees a truncated pack'),
      );
      return reply.type(PACK_CONTENT_TYPE).header(PACK_CODEC_HEADER, codec).send(stream);
    },
  );

  app.post(
    ObjectRoutes.treePack,
    {
      schema: {
        summary:
          `Every tree object (directory and file objects, not chunks) reachable from root and from ` +
          `no have root, as one pack (${PACK_CONTENT_TYPE}), directories first; an unknown root (for a ` +
          'device, also one outside its releases) is a 404; have roots a device may not read are ignored',
        tags,
        body: TreePackRequest,
        response: {
          200: {
            description: 'The pack, compressed as a whole (codec echoed in X-Flotilla-Pack-Codec)',
            content: { [PACK_CONTENT_TYPE]: { schema: PackBody } },
          },
        },
      },
      bodyLimit: TREE_PACK_BODY_LIMIT,
      preHandler: reader,
    },
    async (request, reply) => {
      const { root } = request.body;
      const closures = opts.treeClosures;
      const scope = await readers.scopeOf(request);
      const readable = scope === null || scope.canRead(root);
      // A cached closure outlives a deleted release: check the root is still stored.
      const closure = readable && (await store.has(root)) ? await closures.get(root) : null;
      if (!closure)
        throw new FlotillaError('FLT_OBJECT_MISSING', `tree ${root} is not stored`, {
          details: { missing: [root] },
        });
      const have: Closure[] = [];
      for (const id of new Set(request.body.have ?? [])) {
        // A have root the device may not read is ignored: it only means more is sent.
        if (scope && !scope.canRead(id)) continue;
        if (id === root) {
          have.push(closure);
          continue;
        }
        // A have root the server does not know, or cannot walk whole, only means more is sent.
        const known = await closures.get(id).catch((error: unknown) => {
          if (isFlotillaError(error) && error.statusCode < 500) return null;
          throw error;
        });
        if (known) have.push(known);
      }
      const ids = treePackIds(root, closure, have);
      const codec = request.body.codec ?? 'zstd';
      async function* records(): AsyncGenerator<PackRecord> {
        for (const id of ids) {
          const bytes = await (codec === 'frames' ? store.get(id) : store.getObject(id)).catch(
            (error: unknown) => {
              if (isFlotillaError(error) && error.code === 'FLT_OBJECT_MISSING') closures.forget(root);
              throw error;
            },
          );
          metrics.objectsServed.inc({ via: 'tree-pack' });
          metrics.bytesServed.inc({ via: 'tree-pack' }, bytes.length);
          yield { id, bytes: Buffer.from(bytes) };
        }
      }
      const stream = packStream(records(), codec);
      stream.on('error', (err) =>
        request.log.error({ err }, 'tree pack stream failed; the client sees a truncated pack'),
      );
      request.log.debug({ root, have: have.length, objects: ids.length }, 'tree pack');
      return reply
        .type(PACK_CONTENT_TYPE)
        .header(PACK_CODEC_HEADER, codec)
        .header('cache-control', 'no-store')
        .send(stream);
    },
  );
}
