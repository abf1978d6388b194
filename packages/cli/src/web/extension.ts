/**
 * Serves the operator dashboard (@flotilla/web) at `/` through the server's extension point, so the
 * server package never depends on the web package or React (docs/web.md "How it is served"). The
 * dashboard is static files that use only the public API; no route of its own is added to the API.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import type { ServerExtension } from '@flotilla/server';

/** The built dashboard, or null when it was not built (dist/app/index.html missing). */
export async function dashboardDirIfBuilt(): Promise<string | null> {
  const { dashboardDir } = await import('@flotilla/web');
  return existsSync(join(dashboardDir, 'index.html')) ? dashboardDir : null;
}

export function dashboardExtension(dir: string): ServerExtension {
  return {
    name: 'dashboard',
    async register(app) {
      const { DashboardFiles } = await import('@flotilla/web');
      const files = await DashboardFiles.load(dir);
      const handler = async (request: FastifyRequest, reply: FastifyReply) => {
        const pathname = decodePath(request.url);
        const answer =
          pathname === null
            ? null
            : files.respond(pathname, {
                ifNoneMatch: request.headers['if-none-match'],
                acceptEncoding: request.headers['accept-encoding'],
              });
        if (answer === null) return reply.callNotFound();
        return reply
          .code(answer.status)
          .headers(answer.headers)
          .send(answer.body ?? undefined);
      };
      // Not part of the API: kept out of the OpenAPI document (@fastify/swagger's `hide`).
      const schema = { hide: true } as FastifySchema;
      // `/*` is the router's last resort: every API route and the docs match before it does.
      app.get('/', { schema }, handler);
      app.get('/*', { schema }, handler);
    },
  };
}

function decodePath(url: string): string | null {
  const raw = url.split('?')[0] ?? '/';
  try {
    const p = decodeURIComponent(raw);
    return p.includes('\0') || p.split('/').includes('..') ? null : p;
  } catch {
    return null;
  }
}
