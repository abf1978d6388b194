/**
 * The agent's install script and bundles (docs/agent-lifecycle.md), served from a directory the
 * operator fills with `flotilla agent bundle --downloads DIR`: `curl -fsSL SERVER/install.sh | sh -s --
 * --registration-key KEY`. Unauthenticated, like the script itself: the bundle is not a secret,
 * and what the agent later installs is verified by TUF.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { FlotillaError, Type } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';

/** The placeholder in install.sh that becomes this server's URL. */
export const SERVER_PLACEHOLDER = '__FLOTILLA_SERVER__';
const FILE_NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

export function registerAgentDownloadRoutes(base: FastifyInstance, ctx: ServerContext): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const dir = ctx.config.agentDownloadsDir ?? join(ctx.config.dataDir, 'agent-downloads');
  app.get(
    '/install.sh',
    {
      schema: {
        summary: 'The agent install script (curl -fsSL SERVER/install.sh | sh -s -- --registration-key KEY)',
        tags: ['system'],
        security: [],
        produces: ['text/x-shellscript'],
        response: { 200: Type.String() },
      },
    },
    async (request, reply) => {
      const text = await readFile(join(dir, 'install.sh'), 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw notBuilt(e, 'install.sh');
      });
      const server = ctx.config.publicUrl ?? originOf(request);
      return reply
        .type('text/x-shellscript; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(text.replaceAll(SERVER_PLACEHOLDER, server.replace(/\/+$/, '')));
    },
  );
  app.get(
    '/downloads/agent/:file',
    {
      schema: {
        summary: 'An agent bundle (tar.gz) or its .sha256, as built by flotilla agent bundle --downloads',
        tags: ['system'],
        security: [],
        params: Type.Object({ file: Type.String({ pattern: FILE_NAME }) }),
      },
    },
    async (request, reply) => {
      const path = join(dir, request.params.file);
      const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
        throw notBuilt(e, request.params.file);
      });
      if (!info.isFile()) throw notBuilt(null, request.params.file);
      const type = request.params.file.endsWith('.tar.gz') ? 'application/gzip' : 'text/plain; charset=utf-8';
      return reply.type(type).header('content-length', info.size).send(createReadStream(path));
    },
  );
}

function notBuilt(cause: NodeJS.ErrnoException | null, file: string): FlotillaError {
  if (cause !== null && cause.code !== 'ENOENT' && cause.code !== 'EISDIR')
    return new FlotillaError('FLT_IO', `cannot read ${file}`, { cause });
  return new FlotillaError(
    'FLT_NOT_FOUND',
    `${file} is not here: the operator builds it with flotilla agent bundle --downloads <the server's agentDownloadsDir>`,
    { details: { file } },
  );
}

function originOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}
