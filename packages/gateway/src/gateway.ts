/**
 * The gateway as a host (the server, via its extension point) runs it: the service, its job queue
 * (BullMQ on Redis when a URL is given, else in this process), the expiry sweep, and re-queuing of
 * jobs left unfinished by a previous run. `close` stops all of it.
 */
import type { Logger } from 'pino';
import type { GatewayConfig } from './config/config.js';
import { sweepExpired } from './expiry/sweep.js';
import { BullJobQueue } from './jobs/bull.js';
import type { BullTuning } from './jobs/bull.js';
import type { ImageImporter } from './jobs/importer.js';
import { InProcessQueue } from './jobs/queue.js';
import type { JobQueue } from './jobs/queue.js';
import { ImageStore } from './jobs/store.js';
import type { Clock, GatewayAudit, GatewayDb } from './jobs/tables.js';
import { GatewayService } from './service/images.js';
import type { FleetHost } from './platforms/fleet.js';

export interface GatewayOptions {
  config: GatewayConfig;
  db: GatewayDb;
  audit: GatewayAudit;
  log: Logger;
  clock: Clock;
  /** Converts in this process when there is no Redis; required then. */
  importer: ImageImporter | null;
  /** `redis://HOST:PORT`: jobs go to BullMQ for `flotilla gateway worker` processes. */
  redisUrl?: string | undefined;
  bull?: BullTuning;
  /** Name of this process in job rows (in-process mode). */
  workerId: string;
  /** The server's side of `fleet` platforms (releases, gateway signatures, deployments). */
  fleet?: FleetHost;
}

export interface Gateway {
  service: GatewayService;
  /** Runs one expiry sweep now (also run every `expirySweepMs`). */
  sweep(): Promise<number>;
  close(): Promise<void>;
}

/** Jobs of `local` platforms (by name) to `here`, the others to `elsewhere`. */
function routedQueue(store: ImageStore, elsewhere: JobQueue, here: JobQueue, local: Set<string>): JobQueue {
  return {
    async enqueue(id) {
      const job = await store.job(id);
      await (job !== undefined && local.has(job.platform) ? here : elsewhere).enqueue(id);
    },
    async close() {
      await Promise.all([here.close(), elsewhere.close()]);
    },
  };
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const log = opts.log.child({ component: 'gateway' });
  const store = new ImageStore(opts.db, opts.clock);
  const inProcess = (importer: ImageImporter): InProcessQueue =>
    new InProcessQueue(
      {
        store,
        config: opts.config,
        importer,
        audit: opts.audit,
        log,
        workerId: opts.workerId,
        ...(opts.fleet && { fleet: opts.fleet }),
      },
      log,
    );
  let queue: JobQueue;
  if (opts.redisUrl !== undefined) {
    const bull = new BullJobQueue(
      opts.redisUrl,
      { attempts: opts.config.attempts, backoffMs: opts.config.backoffMs },
      opts.bull,
    );
    const fleetPlatforms = Object.values(opts.config.platforms).filter((p) => p.access.type === 'fleet');
    // Fleet images are published by the server (its store, its gateway key): their jobs run here
    // even when workers on Redis take the others.
    queue =
      fleetPlatforms.length > 0 && opts.fleet && opts.importer
        ? routedQueue(store, bull, inProcess(opts.importer), new Set(fleetPlatforms.map((p) => p.name)))
        : bull;
  } else {
    if (opts.importer === null) throw new Error('the in-process gateway queue needs an importer');
    queue = inProcess(opts.importer);
  }
  const service = new GatewayService(opts.config, store, queue, opts.audit, opts.clock, log, opts.fleet);
  // Jobs queued or running when the last run stopped: queue them again (claim moves running ones).
  for (const job of await store.unfinishedJobs()) await queue.enqueue(job.id);
  const removalDeps = { store, config: opts.config, audit: opts.audit, log, fleet: opts.fleet };
  let sweeping: Promise<number> | null = null;
  const sweep = (): Promise<number> => {
    sweeping ??= sweepExpired(removalDeps, opts.clock).finally(() => {
      sweeping = null;
    });
    return sweeping;
  };
  const timer = setInterval(() => {
    sweep().catch((err: unknown) => log.error({ err }, 'expiry sweep failed'));
  }, opts.config.expirySweepMs);
  timer.unref();
  return {
    service,
    sweep,
    async close() {
      clearInterval(timer);
      await sweeping?.catch(() => undefined);
      await queue.close();
    },
  };
}
