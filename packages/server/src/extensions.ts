/**
 * The server's extension point: a package the server must not import (the image gateway) adds
 * routes and background work through a `ServerExtension` that the CLI passes to `buildApp`. Each
 * extension is registered in its own encapsulated Fastify context after the built-in routes, so
 * it inherits operator authentication, validation, the error envelope and the OpenAPI document,
 * and closes with the app (its own `onClose` hooks). See docs/gateway.md "Where the gateway plugs in".
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AuditRecorder, Clock, ServerContext } from './context.js';
import type { Database } from './db/schema.js';
import type { Dialect } from './db/dialect.js';
import { sourceAddress } from './http/source-address.js';
import type { GatewayFleet } from './deployments/gateway-fleet.js';

export interface ExtensionOperator {
  userId: string;
  username: string;
  role: 'admin' | 'deployer' | 'viewer';
}

/** What the server lends an extension. */
export interface ExtensionHost {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  readonly log: Logger;
  readonly clock: Clock;
  readonly audit: AuditRecorder;
  readonly dataDir: string;
  /** The signed-in operator making the request, or null (devices and anonymous requests). */
  operatorOf(request: FastifyRequest): ExtensionOperator | null;
  /** The request's client address (honours the server's trustProxy setting). */
  sourceAddress(request: FastifyRequest): string;
  /** Releases, gateway-role signatures and deployments for the gateway's `fleet` platforms. */
  readonly fleet: GatewayFleet;
}

export interface ServerExtension {
  readonly name: string;
  register(app: FastifyInstance, host: ExtensionHost): Promise<void>;
}

export function extensionHost(ctx: ServerContext, fleet: GatewayFleet): ExtensionHost {
  return Object.freeze({
    fleet,
    db: ctx.db,
    dialect: ctx.dialect,
    log: ctx.log,
    clock: ctx.clock,
    audit: ctx.audit,
    dataDir: ctx.config.dataDir,
    operatorOf(request: FastifyRequest): ExtensionOperator | null {
      const p = request.principal;
      return p?.kind === 'user' ? { userId: p.userId, username: p.username, role: p.role } : null;
    },
    sourceAddress,
  });
}

/** Registers each extension in its own context, in order. */
export async function registerExtensions(
  app: FastifyInstance,
  ctx: ServerContext,
  extensions: readonly ServerExtension[],
  fleet: GatewayFleet,
): Promise<void> {
  const host = extensionHost(ctx, fleet);
  for (const extension of extensions) {
    await app.register(async (scope) => extension.register(scope, host));
  }
}
