/**
 * A gateway worker process: it opens the server's database (the same `--config`/`--database` as
 * the server: job state and images live there) and takes import jobs from BullMQ on Redis.
 * Direct database access rather than the server's API: job claims and publishes are conditional
 * updates in transactions, which an HTTP round trip per step would only slow and complicate
 * (docs/gateway.md "Workers").
 */
import { hostname } from 'node:os';
import type { BullTuning, ImageImporter } from '@flotilla/gateway';
import type { Logger } from 'pino';
import { gatewayAudit, gatewayDb } from './extension.js';

export interface WorkerStartOptions {
  database: string;
  dataDir: string;
  gatewayConfig?: string | undefined;
  redisUrl: string;
  concurrency?: number | undefined;
  log: Logger;
  importer: ImageImporter;
  bull?: BullTuning;
  workerId?: string;
}

export interface RunningWorker {
  workerId: string;
  close(): Promise<void>;
}

export async function startGatewayWorker(opts: WorkerStartOptions): Promise<RunningWorker> {
  const server = await import('@flotilla/server');
  const gw = await import('@flotilla/gateway');
  const loaded = gw.loadGatewayConfig(opts.gatewayConfig, opts.dataDir);
  const config =
    opts.concurrency === undefined ? loaded : Object.freeze({ ...loaded, concurrency: opts.concurrency });
  const database = await server.openDatabase(opts.database, opts.log);
  const workerId = opts.workerId ?? `worker@${hostname()}:${process.pid}`;
  try {
    const clock = { now: () => new Date() };
    const audit = gatewayAudit(server.createAuditRecorder(database.db, clock));
    const handle = await gw.startBullWorker(
      {
        store: new gw.ImageStore(gatewayDb(database.db), clock),
        config,
        importer: opts.importer,
        audit,
        log: opts.log.child({ component: 'gateway-worker' }),
        workerId,
      },
      opts.redisUrl,
      opts.log,
      opts.bull,
    );
    return {
      workerId,
      async close() {
        await handle.close();
        await database.close();
      },
    };
  } catch (e) {
    await database.close();
    throw e;
  }
}
