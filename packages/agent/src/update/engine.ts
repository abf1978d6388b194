/**
 * The update engine: owns the chunk cache, the runtimes and the journal; plans and runs one
 * transaction at a time per device. The session attaches a source (verified assignment, fetcher,
 * report sink) while connected; recovery and already-installed apps need none.
 */
import { lstat, mkdir, readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { serialQueue } from '@flotilla/node-kit';
import { FlotillaError, errorSummary as summary } from '@flotilla/protocol';
import type { AppLogs, DeviceReport, LogStream, RuntimeKind, UpdateReport } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { AppLayout } from '../apply/layout.js';
import type { ApplyContext, StageReuse, StageVerify } from '../apply/context.js';
import { ReleaseStamps } from '../state/release-stamps.js';
import { ioError } from '../util/fs-ops.js';
import { expectAhead } from '../apply/executors.js';
import { runTransaction } from '../apply/transaction.js';
import type { PhaseEvent, TransactionOutcome } from '../apply/transaction.js';
import { ChunkCache } from '../cache/chunk-cache.js';
import { DurableTrees } from '../apply/durable.js';
import type { DiskProbe } from '../fetch/disk.js';
import { statfsProbe } from '../fetch/disk.js';
import type { RebuildPool } from '../fetch/rebuild-pool.js';
import type { ObjectFetcher } from '../fetch/fetcher.js';
import { readAppLogs } from '../runtimes/app-logs.js';
import { FilesRuntime } from '../runtimes/files-runtime.js';
import { ProcessRuntime } from '../runtimes/process-runtime.js';
import type { Runtime, ServiceAction, ServiceStatus } from '../runtimes/runtime.js';
import { LazyRuntime } from '../runtimes/lazy-runtime.js';
import type { SecretOpener } from '../secrets/opener.js';
import type { StateDatabase } from '../state/db.js';
import { planFailureRollback, planRollback, planUpdate } from './planner.js';
import type { PlanInput } from './planner.js';
import { UpdateRecords } from '../state/update-records.js';
import type { AssignmentAhead, Plan, ReleaseSpec } from '../model/release.js';

export interface UpdateEngineOptions {
  dataDir: string;
  db: StateDatabase;
  logger: Logger;
  /** Previous releases kept for instant rollback (default 1). */
  keepPrevious?: number;
  /** Chunk cache size cap in bytes (default 1 GiB). */
  cacheMaxBytes?: number;
  /** Agent restarts inside switch..health before rolling back (default 3). */
  maxAttempts?: number;
  disk?: DiskProbe;
  /** Ask for changed files as deltas against the installed release (default true). */
  fetchDeltas?: boolean;
  /** How staging takes unchanged files from installed releases (default `link`). */
  stageReuse?: StageReuse;
  /** How staging verifies the installed files it links (default `stamp`). */
  stageVerify?: StageVerify;
  /**
   * Worker threads that rebuild files from deltas while staging goes on (default 1; never more
   * than the CPUs less one); 0 rebuilds them on the main thread.
   */
  deltaThreads?: number;
  /** Defaults to `files`, `process` and `docker`. */
  runtimes?: Partial<Record<RuntimeKind, Runtime>>;
  /** The Docker Engine of the default `docker` runtime (`unix:///…` or `tcp://…`; default `$DOCKER_HOST`). */
  dockerHost?: string;
  /** Opens releases' sealed secrets with the device key; without it, releases with secrets are refused. */
  secrets?: SecretOpener;
}

/** What a connected session provides. */
export interface UpdateSource {
  /** The verified assignment, one release per app (TUF); throws on a refusal. `ahead`: see AssignmentAhead. */
  assignment: (signal: AbortSignal, ahead?: AssignmentAhead) => Promise<ReleaseSpec[]>;
  fetcher: ObjectFetcher;
  report: (report: DeviceReport) => void;
}

/**
 * After an update, a full garbage collection where the agent's Node exposes it (`--expose-gc`, set
 * by the bundle's bin/flotilla-agent): an idle agent allocates too little for V8 to collect by
 * itself, so the update's buffers (external memory, up to hundreds of MB) would stay resident.
 */
function collectGarbageSoon(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) setTimeout(gc, 1000).unref();
}

/** How long the delta rebuild workers outlive the last update (see retireRebuildersWhenIdle). */
const REBUILDERS_IDLE_MS = 30_000;

export class UpdateEngine {
  readonly layout: AppLayout;
  readonly records: UpdateRecords;
  private readonly stamps: ReleaseStamps;
  private source: UpdateSource | null = null;
  private readonly serialize = serialQueue();
  private readonly runtimes: Partial<Record<RuntimeKind, Runtime>>;
  private readonly keepPrevious: number;
  private readonly maxAttempts: number;
  private readonly disk: DiskProbe;
  private rebuilders: RebuildPool | null = null;
  /**
   * Whether the last `converge` ran no update that failed or was rolled back (and verified its
   * assignment): what `--once` exits with.
   */
  lastPassClean = true;
  /** Ends the rebuild workers once no update has run for a while (an idle device keeps none). */
  private retireRebuilders: NodeJS.Timeout | null = null;
  /** Apps a transaction or an operator action is working on: their process changes are not news. */
  private readonly busy = new Set<string>();
  /** Staged trees whose sync runs until their commit (apply/durable.ts). */
  private readonly durable = new DurableTrees();

  private constructor(
    private readonly options: UpdateEngineOptions,
    readonly cache: ChunkCache,
  ) {
    this.layout = new AppLayout(options.dataDir);
    this.records = new UpdateRecords(options.db);
    this.stamps = new ReleaseStamps(options.db);
    this.keepPrevious = options.keepPrevious ?? 1;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.disk = options.disk ?? statfsProbe;
    this.runtimes = options.runtimes ?? {
      files: new FilesRuntime(),
      process: new ProcessRuntime(
        options.logger.child({ component: 'runtime' }),
        options.secrets ?? null,
        (app) => {
          if (!this.busy.has(app)) this.reportStatus(app);
        },
      ),
      // Imported at first use: an agent without docker apps never loads dockerode (footprint).
      docker: new LazyRuntime('docker', async () => {
        const { DockerRuntime } = await import('../runtimes/docker/docker-runtime.js');
        const { ReleaseTreeImageProvider, imageDeliveryFromEnv } =
          await import('../runtimes/docker/release-images.js');
        const dockerLog = options.logger.child({ component: 'docker' });
        const delivery = imageDeliveryFromEnv(process.env);
        return new DockerRuntime({
          logger: dockerLog,
          // Images the engine lacks are loaded from the release tree (docs/containers.md "Image delivery").
          images: new ReleaseTreeImageProvider((message, fields) => dockerLog.info(fields ?? {}, message), {
            delivery,
          }),
          dataDir: options.dataDir,
          ...(options.dockerHost !== undefined && { host: options.dockerHost }),
          onStatus: (app) => {
            if (!this.busy.has(app)) this.reportStatus(app);
          },
        });
      }),
    };
  }

  static async open(options: UpdateEngineOptions): Promise<UpdateEngine> {
    const layout = new AppLayout(options.dataDir);
    await mkdir(layout.chunksDir, { recursive: true }).catch((e: unknown) => {
      throw ioError('cannot create', layout.chunksDir, e);
    });
    const cache = await ChunkCache.open({
      dir: layout.chunksDir,
      db: options.db,
      maxBytes: options.cacheMaxBytes ?? 1024 * 1024 * 1024,
      onCorrupt: (id, error) => options.logger.warn({ id, err: error }, 'corrupt chunk cache item removed'),
      onFlushError: (error) => options.logger.warn({ err: error }, 'could not record chunk cache recency'),
    });
    return new UpdateEngine(options, cache);
  }

  /** Sets (or clears) the connected session; a new one learns how each installed app's process stands. */
  attach(source: UpdateSource | null): void {
    this.source = source;
    if (source === null) return;
    for (const app of this.records.apps()) if (!this.busy.has(app)) this.reportStatus(app);
  }

  /** At agent start: finish or roll back interrupted transactions, then bring committed apps back up. */
  start(signal: AbortSignal): Promise<void> {
    return this.serialize(async () => {
      for (const app of this.records.apps()) {
        try {
          await this.recoverApp(app, signal);
        } catch (error) {
          // One app's trouble must not keep the agent (or the other apps) from starting.
          this.options.logger.error({ err: error, app }, 'could not recover or start an installed app');
        }
      }
    });
  }

  private async recoverApp(app: string, signal: AbortSignal): Promise<void> {
    const journal = this.records.journal(app);
    if (journal !== null) {
      const input = await this.planInput(app, journal.to);
      const plan = planUpdate(input);
      // A transaction interrupted while fetching waits for a connection.
      if (plan.steps.some((s) => s.kind === 'fetch')) return;
      await this.run(plan, input, signal);
      return;
    }
    const current = this.records.installed(app).current;
    if (current) await this.runtimeFor(current).adopt(this.layout.context(current));
  }

  /**
   * Verifies the assignment and runs each app's plan. Failures are reported, never thrown; the
   * result is false when something failed and a later retry may succeed.
   */
  converge(signal: AbortSignal): Promise<boolean> {
    return this.serialize(async () => {
      const source = this.source;
      if (!source) return true;
      let targets: ReleaseSpec[];
      try {
        targets = await source.assignment(signal, (releases) => this.expect(releases));
      } catch (error) {
        this.options.logger.error({ err: error }, 'the assignment could not be verified; installing nothing');
        this.lastPassClean = false;
        return false;
      }
      let ok = true;
      this.lastPassClean = true;
      const apps = new Set([...targets.map((t) => t.app), ...this.records.apps()]);
      for (const app of apps) {
        if (signal.aborted) return ok;
        const input = await this.planInput(app, targets.find((t) => t.app === app) ?? null);
        const outcome = await this.run(planUpdate(input), input, signal).catch((error: unknown) => {
          this.options.logger.error({ err: error, app }, 'update failed unexpectedly');
          return { kind: 'failed' } as const;
        });
        if (outcome.kind === 'failed') ok = false;
        if (outcome.kind === 'failed' || outcome.kind === 'rolled-back') this.lastPassClean = false;
      }
      return ok;
    });
  }

  /** The plans `converge` would run for `targets` (dry run); nothing is executed. */
  async plans(targets: readonly ReleaseSpec[]): Promise<Plan[]> {
    const apps = new Set([...targets.map((t) => t.app), ...this.records.apps()]);
    const plans: Plan[] = [];
    for (const app of apps)
      plans.push(planUpdate(await this.planInput(app, targets.find((t) => t.app === app) ?? null)));
    return plans;
  }

  /** Operator action: back to the previous release; the current one is held until the assignment changes. */
  rollback(app: string, signal: AbortSignal): Promise<TransactionOutcome> {
    return this.serialize(async () => {
      const input = await this.planInput(app, null);
      if (input.journal !== null)
        throw new FlotillaError('FLT_CONFLICT', `${app} has an update in progress; try again when it ends`);
      const plan = planRollback(input, {
        code: 'FLT_ROLLED_BACK_BY_OPERATOR',
        message: 'rolled back by an operator',
      });
      if (plan.steps.length === 0) {
        throw new FlotillaError(
          input.installed.current ? 'FLT_NO_PREVIOUS_RELEASE' : 'FLT_APP_NOT_INSTALLED',
          `cannot roll back ${app}: ${plan.note ?? ''}`,
          { details: { app } },
        );
      }
      return this.run(plan, input, signal);
    });
  }

  /** Operator action: restart the app's current release through its runtime. */
  restart(app: string, signal: AbortSignal): Promise<void> {
    return this.serialize(async () => {
      const current = this.records.installed(app).current;
      if (!current)
        throw new FlotillaError('FLT_APP_NOT_INSTALLED', `${app} is not installed`, { details: { app } });
      const runtime = this.runtimeFor(current);
      this.busy.add(app);
      try {
        if (runtime.control) {
          await runtime.control(app, 'restart', undefined);
        } else {
          await runtime.stop(app, this.layout.appDir(app));
          await runtime.start(this.layout.context(current), signal);
        }
      } finally {
        this.busy.delete(app);
      }
      this.reportStatus(app);
    });
  }

  /** The runtime an installed app runs on (operator commands); FLT_APP_NOT_INSTALLED when none. */
  runtimeOfApp(app: string): Runtime {
    const current = this.records.installed(app).current;
    if (!current)
      throw new FlotillaError('FLT_APP_NOT_INSTALLED', `${app} is not installed`, { details: { app } });
    return this.runtimeFor(current);
  }

  /**
   * Operator command: start, stop or restart the app or one service, through its runtime. Waits
   * for a running update of any app (as `restart` does); what an update does next wins.
   */
  control(app: string, action: ServiceAction, service: string | undefined): Promise<void> {
    return this.serialize(async () => {
      const runtime = this.runtimeOfApp(app);
      if (!runtime.control)
        throw new FlotillaError(
          'FLT_RUNTIME_UNSUPPORTED',
          `the ${runtime.kind} runtime has no services to ${action}`,
          { details: { app, runtime: runtime.kind } },
        );
      this.busy.add(app);
      try {
        await runtime.control(app, action, service);
      } finally {
        this.busy.delete(app);
      }
      this.reportStatus(app);
    });
  }

  /** Operator read: each service's state and usage. */
  async serviceStats(app: string): Promise<ServiceStatus[]> {
    const runtime = this.runtimeOfApp(app);
    if (!runtime.services)
      throw new FlotillaError('FLT_RUNTIME_UNSUPPORTED', `the ${runtime.kind} runtime runs no services`, {
        details: { app, runtime: runtime.kind },
      });
    return runtime.services(app);
  }

  /**
   * The tail of an app's captured output (operator read). Not serialized with updates: it only reads
   * files. Only the process runtime captures output; others answer FLT_RUNTIME_UNSUPPORTED.
   */
  appLogs(app: string, stream: LogStream, maxBytes: number): AppLogs {
    const current = this.records.installed(app).current;
    if (!current)
      throw new FlotillaError('FLT_APP_NOT_INSTALLED', `${app} is not installed`, { details: { app } });
    if (current.runtime !== 'process')
      throw new FlotillaError(
        'FLT_RUNTIME_UNSUPPORTED',
        `${app} runs on the ${current.runtime} runtime, which captures no process output`,
        { details: { app, runtime: current.runtime } },
      );
    return readAppLogs(this.layout.context(current).logDir, app, stream, maxBytes);
  }

  async close(): Promise<void> {
    // Waits for the work queued before (a failure of it was already reported to its caller).
    await this.serialize(() => Promise.resolve());
    this.cache.flushRecency();
    if (this.retireRebuilders !== null) clearTimeout(this.retireRebuilders);
    this.retireRebuilders = null;
    await this.rebuilders?.close();
    await Promise.all(Object.values(this.runtimes).map((r) => r.close()));
  }

  private async run(plan: Plan, input: PlanInput, signal: AbortSignal): Promise<TransactionOutcome> {
    if (plan.steps.length === 0) return { kind: 'none' };
    const to = plan.to;
    if (plan.mode === 'update' && to !== null) {
      // The assignment's signed metadata is verified (a refusal there is reported as failed by
      // the session); now the release's signed runtime config is checked before anything is fetched.
      this.report({ app: plan.app, targetPath: to.targetPath, phase: 'verifying' });
      try {
        const runtime = this.runtimeFor(to);
        // A runtime registered lazily (LazyRuntime) is imported now, before its synchronous validate.
        if (runtime instanceof LazyRuntime) await runtime.ready();
        runtime.validate(to);
        await this.checkSecrets(to);
      } catch (error) {
        // The operator sees this in the device report; the device's own log says it too.
        this.options.logger.error(
          { app: plan.app, targetPath: to.targetPath, err: error },
          'release refused: its runtime configuration or secrets are invalid; nothing installed',
        );
        this.report({
          app: plan.app,
          targetPath: to.targetPath,
          phase: 'failed',
          error: summary(error),
          running: plan.from?.targetPath ?? null,
        });
        return { kind: 'failed', reason: summary(error) };
      }
    }
    this.options.logger.info(
      {
        app: plan.app,
        action: plan.action,
        from: plan.from?.targetPath,
        to: to?.targetPath,
        steps: plan.steps.map((s) => s.kind),
      },
      'running an update plan',
    );
    this.busy.add(plan.app);
    let outcome: TransactionOutcome;
    try {
      outcome = await this.execute(plan, input, signal);
    } finally {
      this.busy.delete(plan.app);
    }
    this.options.logger.info({ app: plan.app, outcome }, 'update plan finished');
    this.retireRebuildersWhenIdle();
    collectGarbageSoon();
    // After the final report: how the release that now runs stands (restarts start from zero).
    this.reportStatus(plan.app);
    return outcome;
  }

  /**
   * Executes `plan`; when the transaction reports that the new release failed at or after the
   * switch, plans the rollback to the release it replaced and executes that (plan → execute).
   */
  private async execute(plan: Plan, input: PlanInput, signal: AbortSignal): Promise<TransactionOutcome> {
    const ctx = this.applyContext();
    const onPhase = (event: PhaseEvent) => this.onPhase(event);
    const result = await runTransaction(plan, input.journal, ctx, signal, onPhase);
    if (result.kind !== 'rollback') return result;
    const rollback = planFailureRollback(
      { ...input, journal: null },
      result.failed,
      result.back,
      result.reason,
    );
    this.options.logger.info(
      { app: plan.app, reason: result.reason, steps: rollback.steps.map((s) => s.kind) },
      'running a rollback plan',
    );
    const outcome = await runTransaction(rollback, null, ctx, signal, onPhase);
    if (outcome.kind === 'failed') return outcome;
    return { kind: 'rolled-back', reason: result.reason };
  }

  /**
   * Opens the release's secrets and checks them against the signed commitments before anything is
   * fetched or stopped, so a refusal leaves the app on the release it runs. The values are dropped.
   */
  private async checkSecrets(release: ReleaseSpec): Promise<void> {
    if (release.secrets === undefined || Object.keys(release.secrets).length === 0) return;
    if (!this.options.secrets)
      throw new FlotillaError(
        'FLT_SECRET_MISSING',
        `${release.targetPath} has secrets, and this agent cannot open them`,
      );
    await this.options.secrets.open(release);
  }

  /**
   * Reports how the committed release's process stands (process runtime), when connected. Sent
   * after each transaction, when a session attaches, and when the process exits or restarts on its
   * own; the report queue keeps only the newest per app, so a crash loop costs no more than that.
   */
  private reportStatus(app: string): void {
    const source = this.source;
    if (!source) return;
    const current = this.records.installed(app).current;
    if (!current) return;
    const status = this.runtimes[current.runtime]?.status?.(app) ?? null;
    if (status === null) return;
    source.report({ app, targetPath: current.targetPath, process: status, at: new Date().toISOString() });
  }

  private applyContext(): ApplyContext {
    return {
      layout: this.layout,
      cache: this.cache,
      records: this.records,
      runtimeFor: (release) => this.runtimeFor(release),
      fetchRelease: (release, signal, full, onTreeReady) =>
        this.fetchRelease(release, signal, full, onTreeReady),
      protectedIds: () => this.cache.reachable(this.installedRoots(true)),
      keepPrevious: this.keepPrevious,
      stageReuse: this.options.stageReuse ?? 'link',
      stageVerify: this.options.stageVerify ?? 'stamp',
      durable: this.durable,
      stamps: this.stamps,
      logger: this.options.logger,
    };
  }

  private async fetchRelease(
    release: ReleaseSpec,
    signal: AbortSignal,
    full: boolean,
    onTreeReady?: () => void,
  ) {
    const source = this.source;
    if (!source) throw new FlotillaError('FLT_UNAVAILABLE', 'not connected to the server; cannot fetch');
    const installed = full ? new Set<string>() : await this.installedObjectIds();
    const current = this.records.installed(release.app).current;
    let reportedAt = -1;
    // The fetch pipeline (and the delta rebuild workers) load with the first download: an idle
    // agent never loads them (docs/agent-lifecycle.md "Footprint").
    const { fetchReleaseObjects } = await import('../fetch/fetch-release.js');
    // Changed files come as deltas against the release this app runs (not after a scrub: its
    // chunks may be what was corrupt); only then are rebuild workers needed.
    const deltaBase =
      current && !full && current.root !== release.root && this.options.fetchDeltas !== false
        ? { root: current.root, dir: this.layout.releaseDir(current.app, current.root) }
        : null;
    const rebuildPool = deltaBase === null ? undefined : await this.rebuildPool();
    const result = await fetchReleaseObjects(release.root, {
      cache: this.cache,
      fetcher: source.fetcher,
      disk: this.disk,
      dataDir: this.options.dataDir,
      installed,
      installedRoots: full ? [] : this.installedRoots(false),
      onTreeFetchFailed: (error) =>
        this.options.logger.warn({ err: error }, 'one-request tree fetch failed; walking the tree instead'),
      installedNeedsNoRoom: (this.options.stageReuse ?? 'link') === 'link',
      signal,
      ...(onTreeReady && { onTreeReady }),
      deltaBase,
      ...(rebuildPool && { rebuildPool }),
      onDeltaFailed: (target, error) =>
        this.options.logger.warn(
          { err: error, target },
          'delta refused or failed; fetching its chunks instead',
        ),
      onProgress: (p) => {
        // Every 5 % (and the first and last), not every chunk.
        const step = p.bytesTotal === 0 ? 100 : Math.floor((p.bytesDone * 20) / p.bytesTotal);
        if (step === reportedAt) return;
        reportedAt = step;
        this.report({
          app: release.app,
          targetPath: release.targetPath,
          phase: 'downloading',
          bytesDone: p.bytesDone,
          bytesTotal: p.bytesTotal,
          bytesFetched: p.wireBytes,
        });
      },
    });
    this.options.logger.info({ app: release.app, ...result }, 'release fetched');
    return { wireBytes: result.wireBytes };
  }

  /** The delta rebuild workers, started with the first download and kept (rebuild-pool.ts). */
  private async rebuildPool(): Promise<RebuildPool> {
    const threads = Math.min(this.options.deltaThreads ?? 1, availableParallelism() - 1);
    const { RebuildPool } = await import('../fetch/rebuild-pool.js');
    if (this.retireRebuilders !== null) clearTimeout(this.retireRebuilders);
    this.retireRebuilders = null;
    this.rebuilders ??= new RebuildPool(threads, () =>
      this.options.logger.warn(
        'a delta rebuild worker stopped or did not start; rebuilding on the main thread',
      ),
    );
    return this.rebuilders;
  }

  /**
   * The rebuild workers stay while updates follow each other (starting one takes about 0.1 s) and
   * end REBUILDERS_IDLE_MS after the last one: their threads and buffers are an idle agent's
   * largest share of memory after an update (docs/agent-lifecycle.md "Footprint").
   */
  private retireRebuildersWhenIdle(): void {
    if (this.rebuilders === null) return;
    if (this.retireRebuilders !== null) clearTimeout(this.retireRebuilders);
    this.retireRebuilders = setTimeout(() => {
      this.retireRebuilders = null;
      const pool = this.rebuilders;
      this.rebuilders = null;
      void pool?.close().finally(collectGarbageSoon);
    }, REBUILDERS_IDLE_MS);
    this.retireRebuilders.unref();
  }

  /** Object ids (dirs and files) of every installed release: their subtrees are complete in the cache. */
  private installedObjectIds(): Promise<Set<string>> {
    return this.cache.reachable(this.installedRoots(false));
  }

  /** Roots of committed releases; with `inFlight`, also those of open transactions (never evicted). */
  private installedRoots(inFlight: boolean): string[] {
    const roots: string[] = [];
    for (const app of this.records.apps()) {
      const installed = this.records.installed(app);
      for (const r of [installed.current, ...installed.previous]) if (r) roots.push(r.root);
      const journal = this.records.journal(app);
      if (inFlight && journal?.from) roots.push(journal.from.root);
      if (inFlight && journal?.to) roots.push(journal.to.root);
    }
    return roots;
  }

  private async planInput(app: string, target: ReleaseSpec | null): Promise<PlanInput> {
    return {
      app,
      installed: this.records.installed(app),
      target,
      journal: this.records.journal(app),
      stagedRoots: await this.stagedRoots(app),
      keepPrevious: this.keepPrevious,
      maxAttempts: this.maxAttempts,
    };
  }

  private async stagedRoots(app: string): Promise<string[]> {
    const dir = this.layout.releasesDir(app);
    const names = await readdir(dir).catch(() => [] as string[]);
    const roots: string[] = [];
    for (const name of names) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      if ((await lstat(`${dir}/${name}`).catch(() => null))?.isDirectory()) roots.push(name);
    }
    return roots;
  }

  /**
   * `Runtime.expect` for each release whose update this pass will fetch (as the planner sees it
   * now: not the release its app runs, one held after an operator's rollback, or one that used up
   * its attempts), as soon as the assignment is verified (docker: the engine's load is opened
   * while the tree is fetched). In the background; a failure only loses the head start.
   */
  private expect(releases: readonly ReleaseSpec[]): void {
    const ctx = { runtimeFor: (r: ReleaseSpec) => this.runtimeFor(r), logger: this.options.logger };
    for (const release of releases)
      void this.willFetch(release).then((fetch) => fetch && expectAhead(ctx, release));
  }

  /** Whether this pass's plan for `release` fetches it (never rejects: false on a failure). */
  private async willFetch(release: ReleaseSpec): Promise<boolean> {
    // The release the app runs: no update, and no need to look at the disk for a plan.
    if (this.records.installed(release.app).current?.root === release.root) return false;
    try {
      return planUpdate(await this.planInput(release.app, release)).steps.some((s) => s.kind === 'fetch');
    } catch {
      return false;
    }
  }

  private runtimeFor(release: ReleaseSpec): Runtime {
    const runtime = this.runtimes[release.runtime];
    if (!runtime) {
      throw new FlotillaError('FLT_RUNTIME_UNSUPPORTED', `this agent has no ${release.runtime} runtime`, {
        details: { app: release.app, runtime: release.runtime },
      });
    }
    return runtime;
  }

  private onPhase(event: PhaseEvent): void {
    this.report({
      app: event.app,
      targetPath: event.targetPath,
      phase: event.phase,
      ...(event.bytesFetched !== undefined && { bytesFetched: event.bytesFetched }),
      ...(event.error && { error: event.error }),
      ...(event.running !== undefined && { running: event.running }),
    });
  }

  private report(report: UpdateReport): void {
    this.source?.report({ ...report, at: new Date().toISOString() });
  }
}
