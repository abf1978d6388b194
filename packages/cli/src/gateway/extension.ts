/**
 * Wires the image gateway into the server (docs/gateway.md "Where the gateway plugs in"). The
 * server and the gateway never import each other: the server offers `ServerExtension`, the
 * gateway a routes plugin and a job runner over its own view of the database; this file, in the
 * CLI that depends on both, is the only place that joins them.
 */
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { GatewayAudit, GatewayDb, ImageImporter } from '@flotilla/gateway';
import type { AuditRecorder, Database, ExtensionHost, ServerExtension } from '@flotilla/server';

export interface GatewayOptions {
  /** YAML gateway configuration (default: $FLOTILLA_GATEWAY_CONFIG, else built-in defaults). */
  configFile?: string | undefined;
  /** `redis://HOST:PORT`: queue jobs for `flotilla gateway worker` processes instead of converting here. */
  redisUrl?: string | undefined;
  /** What converts in this process (default: the registry client and converter). */
  importer?: ImageImporter;
}

/**
 * The gateway's tables are created by the server's migration 007_gateway_images in the same
 * database; the gateway sees them through its own table types.
 */
export function gatewayDb(db: Kysely<Database>): GatewayDb {
  return db as unknown as GatewayDb;
}

export function gatewayAudit(audit: AuditRecorder): GatewayAudit {
  return (entry, tx) => audit.record(entry, tx as unknown as Kysely<Database> | undefined);
}

export function gatewayOptionsFrom(
  flags: { gatewayConfig?: string | undefined; redis?: string | undefined },
  env: Record<string, string | undefined>,
): GatewayOptions {
  return {
    configFile: flags.gatewayConfig ?? (env.FLOTILLA_GATEWAY_CONFIG || undefined),
    redisUrl: flags.redis ?? (env.FLOTILLA_REDIS_URL || undefined),
  };
}

export function gatewayExtension(options: GatewayOptions): ServerExtension {
  return {
    name: 'gateway',
    async register(app, host: ExtensionHost) {
      const gw = await import('@flotilla/gateway');
      const config = gw.loadGatewayConfig(options.configFile, host.dataDir);
      const gateway = await gw.startGateway({
        config,
        db: gatewayDb(host.db),
        audit: gatewayAudit(host.audit),
        log: host.log,
        clock: host.clock,
        importer: options.importer ?? gw.registryImporter(),
        redisUrl: options.redisUrl,
        workerId: `server@${hostname()}:${process.pid}`,
        fleet: host.fleet,
      });
      app.addHook('onClose', () => gateway.close());
      gw.registerImageRoutes(app, gateway.service, host);
      host.log.info(
        {
          platforms: Object.keys(config.platforms),
          queue: options.redisUrl === undefined ? 'in-process' : 'redis',
        },
        'image gateway ready',
      );
    },
  };
}
