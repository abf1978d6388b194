/**
 * Precomputed file deltas between two releases, like `ostree static-delta generate`: files are
 * paired by path, and every pair whose file object differs gets its delta record computed into the
 * cache, so devices updating from the older release are answered with no computation. On demand
 * (`POST /api/v1/releases/:app/:version/deltas`, deployer, audited) and in the background after a
 * deployment, from each release the targeted devices report running.
 */
import { FlotillaError } from '@flotilla/protocol';
import type { PrecomputeDeltasResponse } from '@flotilla/protocol';
import { DeltaKind, walkTree } from '@flotilla/store';
import type { ServerContext } from '../context.js';
import type { DeltaPriority, DeltaService } from './service.js';
import type { ObjectStore } from '../objects/store.js';
import { getRelease } from '../releases/service.js';

export interface DeltaPrecomputeServices {
  ctx: ServerContext;
  store: ObjectStore;
  deltas: DeltaService;
}

/** path → file object id of every regular file of a tree. */
async function filesByPath(store: ObjectStore, root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const { path, entry } of walkTree(store, root)) {
    if (entry.kind === 'file' && entry.hash !== undefined) files.set(path, entry.hash);
  }
  return files;
}

/** Computes (or finds cached) the delta of every file of `app@to` that differs from `app@from`. */
export async function precomputeDeltas(
  svc: DeltaPrecomputeServices,
  app: string,
  from: string,
  to: string,
  options: { priority?: DeltaPriority; signal?: AbortSignal } = {},
): Promise<PrecomputeDeltasResponse> {
  const started = Date.now();
  if (from === to)
    throw new FlotillaError('FLT_VALIDATION', `from and to are the same release (${app}@${to})`);
  const fromRelease = await getRelease(svc.ctx.db, app, from);
  const toRelease = await getRelease(svc.ctx.db, app, to);
  const before = await filesByPath(svc.store, fromRelease.rootObject);
  const pairs: { target: string; base: string }[] = [];
  for (const [path, target] of await filesByPath(svc.store, toRelease.rootObject)) {
    const base = before.get(path);
    if (base !== undefined && base !== target) pairs.push({ target, base });
  }
  const files = await svc.deltas.fileObjects(pairs.flatMap((p) => [p.target, p.base]));
  const result: PrecomputeDeltasResponse = {
    app,
    from,
    to,
    files: pairs.length,
    deltas: 0,
    deltaBytes: 0,
    plainBytes: 0,
    ms: 0,
  };
  for (const { target, base } of pairs) {
    if (options.signal?.aborted)
      throw new FlotillaError('FLT_UNAVAILABLE', 'delta precomputation stopped (server shutting down)');
    const [record, plain] = await Promise.all([
      svc.deltas.record(target, base, files, options.priority ?? 'request'),
      svc.deltas.plainBytes(files.get(target)!, files.get(base)!),
    ]);
    result.plainBytes += plain;
    if (record.kind === DeltaKind.zstd) {
      result.deltas += 1;
      result.deltaBytes += record.payload.length;
    } else result.deltaBytes += plain;
  }
  result.ms = Date.now() - started;
  return result;
}

/** The operator's precomputation (`POST /api/v1/releases/:app/:version/deltas`), audited. */
export async function precomputeForOperator(
  svc: DeltaPrecomputeServices,
  app: string,
  from: string,
  to: string,
  actor: { userId: string; sourceIp: string | null },
): Promise<PrecomputeDeltasResponse> {
  const result = await precomputeDeltas(svc, app, from, to);
  await svc.ctx.audit.record({
    actorType: 'user',
    actorId: actor.userId,
    action: 'release.deltas.precompute',
    subjectType: 'release',
    subjectId: `${app}@${to}`,
    sourceIp: actor.sourceIp,
    details: { ...result },
  });
  return result;
}

export interface DeploymentPrecompute {
  /**
   * Starts, in the background, the precomputation for a deployment of `app@version` from every
   * release that devices assigned it still run. Never throws; failures are logged. Subscribed to
   * the `deployment.created` event by `buildApp`.
   */
  afterDeploy(app: string, version: string): void;
  /** Stops starting pairs and waits for the running tasks to end. */
  stop(): Promise<void>;
}

export function startDeploymentPrecompute(svc: DeltaPrecomputeServices): DeploymentPrecompute {
  const log = svc.ctx.log.child({ component: 'delta-precompute' });
  const abort = new AbortController();
  const tasks = new Set<Promise<void>>();
  const run = async (app: string, version: string) => {
    const { db } = svc.ctx;
    const release = await getRelease(db, app, version);
    // Devices heading for this release (this deployment's and any earlier one's still on the way)
    // and the release each last reported committed.
    const rows = await db
      .selectFrom('device_apps')
      .select('current')
      .distinct()
      .where('app', '=', app)
      .where('desired', '=', release.targetPath)
      .where('current', 'is not', null)
      .where('current', '!=', release.targetPath)
      .execute();
    const running = rows.map((r) => r.current!);
    if (running.length === 0) return;
    const sources = await db
      .selectFrom('releases')
      .select('version')
      .where('app', '=', app)
      .where('target_path', 'in', running)
      .orderBy('version')
      .execute();
    for (const { version: from } of sources) {
      if (abort.signal.aborted) return;
      const result = await precomputeDeltas(svc, app, from, version, {
        priority: 'background',
        signal: abort.signal,
      });
      log.info(result, 'deltas precomputed for a deployment');
    }
  };
  return {
    afterDeploy(app, version) {
      if (abort.signal.aborted) return;
      const task: Promise<void> = run(app, version)
        .catch((err: unknown) => {
          if (!abort.signal.aborted)
            log.warn({ err, app, version }, 'delta precomputation for a deployment failed');
        })
        .finally(() => tasks.delete(task));
      tasks.add(task);
    },
    async stop() {
      abort.abort();
      await Promise.all([...tasks]);
    },
  };
}
