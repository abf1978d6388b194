/** Unauthenticated endpoints for humans, load balancers and Prometheus. */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { FLOTILLA_VERSION, OperatorRoutes, ServerInfo, Type } from '@flotilla/protocol';
import { FlotillaError } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { ServerContext } from '../context.js';
import { isSchemaCurrent } from '../db/migrate.js';

const Health = Type.Object({ status: Type.Literal('ok') });
const Ready = Type.Object({ status: Type.Literal('ready'), database: Type.String() });

export function registerSystemRoutes(base: FastifyInstance, ctx: ServerContext): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    OperatorRoutes.info,
    {
      schema: {
        summary: 'Server name, version and database dialect',
        tags: ['system'],
        security: [],
        response: { 200: ServerInfo },
      },
    },
    () => ({ name: 'flotilla' as const, version: FLOTILLA_VERSION, database: ctx.dialect }),
  );
  app.get(
    '/healthz',
    {
      schema: { summary: 'The process is alive', tags: ['system'], security: [], response: { 200: Health } },
    },
    () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        summary: 'The database answers, its schema is current and the data directory has free space',
        tags: ['system'],
        security: [],
        response: { 200: Ready },
      },
    },
    async () => {
      await checkFreeSpace(ctx);
      try {
        await sql`select 1`.execute(ctx.db);
        if (!(await isSchemaCurrent(ctx.db))) {
          throw new FlotillaError('FLT_UNAVAILABLE', 'database migrations are not applied');
        }
      } catch (e) {
        if (e instanceof FlotillaError) throw e;
        throw new FlotillaError('FLT_UNAVAILABLE', 'the database does not answer', { cause: e });
      }
      return { status: 'ready' as const, database: ctx.dialect };
    },
  );
  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics', tags: ['system'], security: [], produces: ['text/plain'] } },
    async (_request, reply) => {
      const text = await ctx.metrics.metrics();
      return reply.type(ctx.metrics.contentType).send(text);
    },
  );
}

/**
 * 503 while the file system of the data directory (or of a SQLite database kept elsewhere) has
 * less than `minFreeDiskBytes` available: writes would fail with FLT_DISK_FULL. Paths stay out of
 * the answer; the log names them.
 */
async function checkFreeSpace(ctx: ServerContext): Promise<void> {
  const dirs = new Set([ctx.config.dataDir]);
  if (ctx.config.database.startsWith('sqlite:'))
    dirs.add(dirname(ctx.config.database.slice('sqlite:'.length)));
  for (const dir of dirs) {
    let freeBytes: number;
    try {
      const fs = await statfs(dir);
      freeBytes = fs.bavail * fs.bsize;
    } catch (e) {
      ctx.log.warn({ err: e, dir }, 'readiness: cannot read the free space of the data directory');
      throw new FlotillaError('FLT_UNAVAILABLE', 'the data directory cannot be read', { cause: e });
    }
    if (freeBytes < Math.max(ctx.config.minFreeDiskBytes, 1)) {
      ctx.log.warn({ dir, freeBytes, minFreeBytes: ctx.config.minFreeDiskBytes }, 'not ready: storage full');
      throw new FlotillaError('FLT_UNAVAILABLE', 'the data directory is full (or below minFreeDiskBytes)', {
        details: { reason: 'disk-full', freeBytes, minFreeBytes: ctx.config.minFreeDiskBytes },
      });
    }
  }
}
