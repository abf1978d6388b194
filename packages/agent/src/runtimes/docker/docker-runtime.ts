/**
 * The `docker` runtime: compose apps on a Docker Engine through its API (docs/containers.md).
 *
 * Everything it creates carries labels (owner = this agent's data directory, app, service, release
 * root, config hash); it lists only its own containers and never touches others. Each service has
 * one active container, named `fl-<owner>-<app>-<service>`. An update replaces only the services
 * whose hash changed: the new container is created under its parked name (`<name>.<hash12>`)
 * while the old one stops; the old one is then *parked* (renamed `<name>.<hash12>` of its own hash)
 * and the new one takes the service's name and starts, so a rollback (which starts the previous
 * release again) finds the old one and renames it back. Parked
 * containers are removed when the transaction settles (its cleanup step). Every step is idempotent
 * against what the engine shows, so a crash at any instant converges when the transaction resumes.
 */
import { mkdir } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { FlotillaError, dockerServiceOrder } from '@flotilla/protocol';
import type { DockerRuntimeConfig } from '@flotilla/protocol';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { ReleaseSpec } from '../../model/release.js';
import { sleep } from '../../util/sleep.js';
import { checkRuntimeConfig } from '../config.js';
import type {
  AppContext,
  ExecIo,
  LogFollowOptions,
  LogLine,
  Runtime,
  ServiceAction,
  ServiceStatus,
} from '../runtime.js';
import { serviceSpec } from './container-spec.js';
import type { ServicePlan } from './container-spec.js';
import { EngineImageProvider } from './engine-image-provider.js';
import { LABEL, Names, connectEngine, engineCall, engineUnavailable, ownerId, statusOf } from './engine.js';
import type { ImageProvider } from './image-provider.js';
import { NeighbourAnnouncer } from './neighbours.js';

export const DOCKER_DEFAULTS = {
  windowMs: 5000,
  timeoutMs: 60_000,
  stopTimeoutS: 10,
  pollMs: 250,
  /** How often an app whose adoption failed (engine down) is tried again. */
  retryMs: 2000,
  logTail: 100,
} as const;

export const dockerConfig = (release: ReleaseSpec) => checkRuntimeConfig<DockerRuntimeConfig>(release).docker;

export interface DockerRuntimeOptions {
  logger: Logger;
  /** This agent's data directory: what it creates on the engine is labelled with its hash. */
  dataDir: string;
  /** `DOCKER_HOST`-style address; default `$DOCKER_HOST`, else `unix:///var/run/docker.sock`. */
  host?: string;
  /** How images reach the engine (default: they must be there already). */
  images?: ImageProvider;
  /** Called when an app's containers change on their own (adoption after the engine came back). */
  onStatus?: (app: string) => void;
}

type Info = Docker.ContainerInfo;

export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const;
  readonly docker: Docker;
  readonly names: Names;
  /** The engine's address, for error messages. */
  private readonly where: string;
  private readonly images: ImageProvider;
  private readonly logger: Logger;
  /** The release each app runs, as last started or adopted (service order, operator commands). */
  private readonly apps = new Map<string, AppContext>();
  /** Apps whose adoption waits for the engine to answer again. */
  private readonly pending = new Map<string, AppContext>();
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly closed = new AbortController();
  /** Null for an engine that is not on this host's unix socket (its bridges are not ours). */
  private readonly neighbours: NeighbourAnnouncer | null;

  constructor(private readonly options: DockerRuntimeOptions) {
    const { docker, where } = connectEngine(options.host ?? process.env.DOCKER_HOST);
    this.where = where;
    this.docker = docker;
    this.names = new Names(ownerId(options.dataDir));
    this.images = options.images ?? new EngineImageProvider();
    this.logger = options.logger;
    this.neighbours = where.startsWith('unix://') ? new NeighbourAnnouncer(docker, this.logger) : null;
  }

  validate(release: ReleaseSpec): void {
    dockerConfig(release);
  }

  private call<T>(fn: () => Promise<T>): Promise<T> {
    return engineCall(fn, this.where);
  }

  /** Throws FLT_ENGINE_UNAVAILABLE unless the engine answers. */
  async ping(): Promise<void> {
    await this.call(() => this.docker.ping());
  }

  /**
   * The transaction's stop step: containers keep running, `start` replaces only the services that
   * changed. It checks that the engine answers, so an update begun while dockerd is down changes
   * nothing and fails with FLT_ENGINE_UNAVAILABLE (retried later).
   */
  async stop(): Promise<void> {
    await this.ping();
  }

  /** Opens the engine's load of each image of `release` it lacks, as the update begins (`Runtime.expect`). */
  async expect(release: ReleaseSpec): Promise<void> {
    let images: Readonly<Record<string, string>>;
    try {
      images = dockerConfig(release).images;
    } catch {
      return; // not a valid docker release: validation reports it
    }
    await this.images.expect?.(this.docker, images);
  }

  /** Begins loading the release's images the engine lacks, from the cache, while the stage step runs (`Runtime.prepare`). */
  async prepare(ctx: AppContext, signal: AbortSignal): Promise<void> {
    const config = dockerConfig(ctx.release);
    await this.images.prepare?.(this.docker, ctx, config.images, signal);
  }

  async start(ctx: AppContext, signal: AbortSignal): Promise<void> {
    const config = dockerConfig(ctx.release);
    await this.ping();
    await this.images.ensure(this.docker, ctx, config.images, signal);
    await this.ensureNetwork(ctx.app);
    for (const volume of config.compose.volumes ?? []) await this.ensureVolume(ctx.app, volume);
    const plans = this.plans(ctx, config);
    for (const plan of plans.values())
      for (const m of (plan.options.HostConfig?.Mounts ?? []) as { Type: string; Source: string }[])
        if (m.Type === 'bind') await mkdir(m.Source, { recursive: true });
    this.apps.set(ctx.app, ctx);
    let ours = await this.containers(ctx.app);
    // Services the new release no longer has: stopped and parked (a rollback brings them back).
    for (const c of ours) {
      const service = c.Labels[LABEL.service] ?? '';
      if (this.isActive(ctx.app, c) && !plans.has(service)) await this.park(ctx.app, c);
    }
    const order = dockerServiceOrder(config.compose.services) ?? [];
    for (const service of order) {
      if (signal.aborted) throw new FlotillaError('FLT_RUNTIME_FAILED', 'start interrupted');
      const plan = plans.get(service) as ServicePlan;
      await this.waitForDependencies(ctx, config, service, signal);
      ours = await this.containers(ctx.app);
      await this.converge(ctx, config, plan, ours, signal);
    }
  }

  /** Brings one service to its plan: keep, restore a parked container, or create a new one. */
  private async converge(
    ctx: AppContext,
    config: DockerRuntimeConfig['docker'],
    plan: ServicePlan,
    ours: Info[],
    signal: AbortSignal,
  ): Promise<void> {
    const { service, hash } = plan;
    const active = ours.find((c) => this.isActive(ctx.app, c) && c.Labels[LABEL.service] === service);
    if (active && active.Labels[LABEL.hash] === hash) {
      if (active.State !== 'running') await this.startContainer(active.Id);
      return;
    }
    const parkedName = this.names.parked(ctx.app, service, hash);
    const candidate = ours.find((c) => nameOf(c) === parkedName && c.Labels[LABEL.hash] === hash);
    const strategy = config.strategy?.[service] ?? 'stop-start';
    if (strategy === 'start-stop' && active?.State === 'running') {
      // The new container runs beside the old one under its parked name until it is healthy.
      const id = candidate?.Id ?? (await this.create({ ...plan.options, name: parkedName }));
      await this.startContainer(id);
      try {
        await this.gate(ctx, config, service, id, signal);
      } catch (error) {
        await this.stopContainer(id, config.stopTimeoutS);
        throw error;
      }
      await this.park(ctx.app, active);
      await this.rename(id, this.names.container(ctx.app, service));
      return;
    }
    if (active) {
      // Stop-then-start: the new container is created under its parked name while the old one
      // stops (a create binds no ports; with a copying storage driver it is most of the work),
      // so only the renames and the start remain between the old one's end and the new one's.
      const [created, stopped] = await Promise.allSettled([
        candidate ? Promise.resolve(candidate.Id) : this.create({ ...plan.options, name: parkedName }),
        this.stopContainer(active.Id, config.stopTimeoutS),
      ]);
      // Both calls have ended before either failure is thrown: a rollback never races a pending stop.
      if (stopped.status === 'rejected') throw stopped.reason;
      if (created.status === 'rejected') throw created.reason;
      await this.park(ctx.app, active);
      await this.rename(created.value, this.names.container(ctx.app, service));
      await this.startContainer(created.value);
      return;
    }
    if (candidate) await this.rename(candidate.Id, this.names.container(ctx.app, service));
    const id = candidate?.Id ?? (await this.create(plan.options));
    await this.startContainer(id);
  }

  /** The health window: every container running without a restart, healthchecks healthy. */
  async health(ctx: AppContext, signal: AbortSignal): Promise<void> {
    const config = dockerConfig(ctx.release);
    const windowMs = config.health?.windowMs ?? DOCKER_DEFAULTS.windowMs;
    const timeoutMs = Math.max(windowMs, config.health?.timeoutMs ?? DOCKER_DEFAULTS.timeoutMs);
    const started = performance.now();
    const first = new Map<string, { startedAt: string; restarts: number }>();
    for (;;) {
      if (signal.aborted) throw new FlotillaError('FLT_HEALTH_CHECK_FAILED', 'health check interrupted');
      let waiting: string | null = null;
      for (const service of Object.keys(config.compose.services)) {
        const info = await this.inspectService(ctx.app, service);
        if (!info) throw new FlotillaError('FLT_HEALTH_CHECK_FAILED', `service ${service} has no container`);
        const state = info.State;
        const seen = first.get(service) ?? { startedAt: state.StartedAt, restarts: info.RestartCount };
        first.set(service, seen);
        if (seen.startedAt !== state.StartedAt || seen.restarts !== info.RestartCount || state.Restarting)
          throw unhealthy(service, 'restarted during the health window', info);
        if (!state.Running) {
          const oneShot =
            state.ExitCode === 0 && (config.compose.services[service]?.restart ?? 'no') !== 'always';
          if (!oneShot) throw unhealthy(service, `exited with code ${state.ExitCode}`, info);
          continue;
        }
        const status = state.Health?.Status;
        if (status === 'unhealthy') throw unhealthy(service, 'its healthcheck reports unhealthy', info);
        if (status === 'starting') waiting ??= `service ${service}: its healthcheck has not passed yet`;
      }
      const elapsed = performance.now() - started;
      if (waiting === null && elapsed >= windowMs) return;
      if (elapsed >= timeoutMs)
        throw new FlotillaError(
          'FLT_HEALTH_CHECK_FAILED',
          `${waiting ?? 'not healthy'} after ${timeoutMs} ms`,
        );
      await sleep(DOCKER_DEFAULTS.pollMs, signal);
    }
  }

  /** After an agent restart: the committed release's containers run again (or are created). */
  async adopt(ctx: AppContext): Promise<void> {
    this.apps.set(ctx.app, ctx);
    try {
      await this.start(ctx, this.closed.signal);
      await this.settle(ctx.app, ctx);
      this.pending.delete(ctx.app);
    } catch (error) {
      if (!engineUnavailable(error)) throw error;
      // The engine is down: try again until it answers, then report.
      this.logger.error({ err: error, app: ctx.app }, 'the Docker Engine does not answer; will retry');
      this.pending.set(ctx.app, ctx);
      this.scheduleRetry();
      throw error;
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== null || this.closed.signal.aborted) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void (async () => {
        for (const [app, ctx] of [...this.pending]) {
          try {
            await this.start(ctx, this.closed.signal);
            await this.settle(ctx.app, ctx);
            this.pending.delete(app);
            this.logger.info({ app }, 'the Docker Engine answers again; app adopted');
            this.options.onStatus?.(app);
          } catch (error) {
            if (!engineUnavailable(error)) {
              this.pending.delete(app);
              this.logger.error({ err: error, app }, 'could not adopt the app');
            }
          }
        }
        if (this.pending.size > 0) this.scheduleRetry();
      })();
    }, DOCKER_DEFAULTS.retryMs);
    this.retryTimer.unref();
  }

  /** The transaction ended with `current` running: parked containers are no longer needed. */
  async settle(app: string, current: AppContext | null): Promise<void> {
    for (const c of await this.containers(app))
      if (current === null || !this.isActive(app, c)) await this.remove(c.Id);
    if (current === null) {
      this.apps.delete(app);
      this.pending.delete(app);
    }
  }

  /** Containers keep running when the agent stops; dockerd supervises them. */
  close(): Promise<void> {
    this.closed.abort();
    this.images.close?.();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    return Promise.resolve();
  }

  // Operator commands.

  async control(app: string, action: ServiceAction, service: string | undefined): Promise<void> {
    const targets = await this.activeContainers(app, service);
    const order = this.serviceOrder(app);
    targets.sort((a, b) => order.indexOf(serviceOf(a)) - order.indexOf(serviceOf(b)));
    if (action === 'stop') targets.reverse();
    const stopTimeoutS = this.apps.get(app)
      ? dockerConfig(this.apps.get(app)!.release).stopTimeoutS
      : undefined;
    for (const c of targets) {
      if (action === 'start') await this.startContainer(c.Id);
      else if (action === 'stop') await this.stopContainer(c.Id, stopTimeoutS);
      else {
        await this.call(() =>
          this.docker.getContainer(c.Id).restart({ t: stopTimeoutS ?? DOCKER_DEFAULTS.stopTimeoutS }),
        );
        await this.neighbours?.announce(c.Id);
      }
    }
  }

  async logs(app: string, options: LogFollowOptions, onLine: (line: LogLine) => void): Promise<void> {
    const targets = await this.activeContainers(app, options.service);
    if (!options.follow) {
      await Promise.all(targets.map((c) => this.containerLogs(c, options, onLine)));
      return;
    }
    await Promise.all(targets.map((c) => this.followService(app, c, options, onLine)));
  }

  /**
   * Follows one service until `options.signal` aborts. The engine ends a container's log stream
   * when the container stops (an operator's restart, a crash, an update that replaces it): the
   * follow then waits for the service's container (the same, or its replacement) to run again and
   * goes on from the last line sent, so no line is sent twice and none written since is lost.
   */
  private async followService(
    app: string,
    first: Info,
    options: LogFollowOptions,
    onLine: (line: LogLine) => void,
  ): Promise<void> {
    const service = serviceOf(first);
    const startedAt = options.since ?? Date.now();
    let lastAt: number | undefined;
    /** Lines sent whose time is `lastAt` (resuming asks the engine from that instant again). */
    let atLast = new Set<string>();
    const sent = (line: LogLine) => {
      if (line.at !== undefined) {
        if (lastAt !== undefined && line.at < lastAt) return;
        if (line.at === lastAt && atLast.has(line.text)) return;
        if (line.at !== lastAt) atLast = new Set();
        lastAt = line.at;
        atLast.add(line.text);
      }
      onLine(line);
    };
    let c: Info = first;
    let from = options;
    for (;;) {
      await this.containerLogs(c, from, sent);
      if (options.signal.aborted) return;
      const next = await this.waitForService(app, service, options.signal);
      if (next === null) return;
      c = next;
      // Every line since the last one sent (or since the follow began).
      from = { ...options, tail: Number.MAX_SAFE_INTEGER, since: lastAt ?? startedAt };
    }
  }

  /** The service's active container once it runs (polled); null when `signal` aborts. */
  private async waitForService(app: string, service: string, signal: AbortSignal): Promise<Info | null> {
    const name = this.names.container(app, service);
    while (!signal.aborted) {
      try {
        const found = (await this.containers(app)).find((c) => nameOf(c) === name);
        if (found?.State === 'running') return found;
      } catch (error) {
        if (!engineUnavailable(error)) throw error;
      }
      await sleep(DOCKER_DEFAULTS.pollMs, signal);
    }
    return null;
  }

  private async containerLogs(
    c: Info,
    options: LogFollowOptions,
    onLine: (line: LogLine) => void,
  ): Promise<void> {
    const container = this.docker.getContainer(c.Id);
    const base = {
      stdout: true,
      stderr: true,
      timestamps: true,
      tail: options.tail ?? DOCKER_DEFAULTS.logTail,
      ...(options.since !== undefined && { since: Math.floor(options.since / 1000) }),
    };
    const service = serviceOf(c);
    const split = (stream: 'stdout' | 'stderr') => {
      let rest = '';
      const out = new PassThrough();
      const feed = (chunk: Buffer) => {
        const lines = (rest + chunk.toString('utf8')).split('\n');
        rest = lines.pop() ?? '';
        for (const raw of lines) {
          if (raw === '') continue;
          const space = raw.indexOf(' ');
          const at = Date.parse(raw.slice(0, space));
          const line: LogLine = { stream, service, text: Number.isNaN(at) ? raw : raw.slice(space + 1) };
          if (!Number.isNaN(at)) line.at = at;
          if (options.since === undefined || line.at === undefined || line.at >= options.since) onLine(line);
        }
      };
      out.on('data', feed);
      return Object.assign(out, { feed });
    };
    const stdout = split('stdout');
    const stderr = split('stderr');
    if (!options.follow) {
      const buffer = await this.call<Buffer>(() => container.logs({ ...base, follow: false }));
      demuxBuffer(buffer, (type, payload) => (type === 2 ? stderr : stdout).feed(payload));
      stdout.feed(Buffer.from('\n'));
      stderr.feed(Buffer.from('\n'));
      return;
    }
    const stream = (await this.call(() =>
      container.logs({ ...base, follow: true }),
    )) as NodeJS.ReadableStream & { destroy?: () => void };
    this.docker.modem.demuxStream(stream, stdout, stderr);
    await new Promise<void>((resolve) => {
      const end = () => {
        options.signal.removeEventListener('abort', end);
        stream.destroy?.();
        resolve();
      };
      if (options.signal.aborted) end();
      options.signal.addEventListener('abort', end, { once: true });
      stream.on('end', end);
      stream.on('error', end);
    });
  }

  async exec(
    app: string,
    service: string | undefined,
    argv: readonly string[],
    io: ExecIo,
  ): Promise<{ exitCode: number }> {
    const [c] = await this.activeContainers(app, service, true);
    const container = this.docker.getContainer((c as Info).Id);
    const exec = await this.call(() =>
      container.exec({
        Cmd: [...argv],
        AttachStdin: io.stdin !== null,
        AttachStdout: true,
        AttachStderr: true,
      }),
    );
    const stream = await this.call(() => exec.start({ hijack: true, stdin: io.stdin !== null }));
    demuxWithBackpressure(stream, io.stdout, io.stderr);
    if (io.stdin !== null) io.stdin.pipe(stream);
    await new Promise<void>((resolve) => {
      const end = () => {
        io.signal.removeEventListener('abort', end);
        resolve();
      };
      stream.on('end', end);
      stream.on('close', end);
      stream.on('error', end);
      io.signal.addEventListener('abort', () => {
        stream.destroy();
        end();
      });
    });
    for (let i = 0; i < 40; i++) {
      const info = await this.call(() => exec.inspect());
      if (!info.Running) return { exitCode: info.ExitCode ?? -1 };
      if (io.signal.aborted) break;
      await sleep(50, io.signal);
    }
    return { exitCode: -1 };
  }

  /** Each active container's state and usage; the containers are read in parallel (a stats read waits for two samples). */
  async services(app: string): Promise<ServiceStatus[]> {
    const active = await this.activeContainers(app, undefined);
    const out = await Promise.all(active.map((c) => this.serviceStatus(c)));
    return out.sort((a, b) => a.service.localeCompare(b.service));
  }

  private async serviceStatus(c: Info): Promise<ServiceStatus> {
    const container = this.docker.getContainer(c.Id);
    const info = await this.call(() => container.inspect());
    const status: ServiceStatus = {
      service: serviceOf(c),
      state: info.State.Status,
      health: (info.State.Health?.Status as ServiceStatus['health'] | undefined) ?? 'none',
      restarts: info.RestartCount,
      containerId: c.Id,
      image: info.Image,
      startedAt: info.State.StartedAt,
    };
    if (info.State.Running) {
      const stats = await this.call<Docker.ContainerStats>(() => container.stats({ stream: false }));
      const cpu = stats.cpu_stats.cpu_usage.total_usage - stats.precpu_stats.cpu_usage.total_usage;
      const system = (stats.cpu_stats.system_cpu_usage ?? 0) - (stats.precpu_stats.system_cpu_usage ?? 0);
      const cpus = stats.cpu_stats.online_cpus ?? 1;
      if (system > 0) status.cpuPercent = Math.max(0, (cpu / system) * cpus * 100);
      if (stats.memory_stats.usage !== undefined) status.memoryBytes = stats.memory_stats.usage;
    }
    return status;
  }

  async tunnelAddress(
    app: string,
    service: string | undefined,
    port: number,
  ): Promise<{ host: string; port: number }> {
    const [c] = await this.activeContainers(app, service, true);
    const info = await this.call(() => this.docker.getContainer((c as Info).Id).inspect());
    const network = info.NetworkSettings.Networks[this.names.network(app)];
    if (!network?.IPAddress)
      throw new FlotillaError(
        'FLT_RUNTIME_FAILED',
        `${app}/${serviceOf(c as Info)} has no address (is it running?)`,
      );
    return { host: network.IPAddress, port };
  }

  // The engine.

  /** This agent's containers of `app` (all states). */
  async containers(app: string): Promise<Info[]> {
    return this.call(() =>
      this.docker.listContainers({
        all: true,
        filters: { label: [`${LABEL.owner}=${this.names.owner}`, `${LABEL.app}=${app}`] },
      }),
    );
  }

  private isActive(app: string, c: Info): boolean {
    return nameOf(c) === this.names.container(app, serviceOf(c));
  }

  /** The active containers of an app, or of one service (FLT_NOT_FOUND for a name it does not have). */
  private async activeContainers(app: string, service: string | undefined, one = false): Promise<Info[]> {
    const active = (await this.containers(app)).filter((c) => this.isActive(app, c));
    if (active.length === 0)
      throw new FlotillaError('FLT_APP_NOT_INSTALLED', `${app} has no containers on this device`, {
        details: { app },
      });
    if (service !== undefined) {
      const found = active.filter((c) => serviceOf(c) === service);
      if (found.length === 0)
        throw new FlotillaError('FLT_NOT_FOUND', `${app} has no service ${service}`, {
          details: { app, service, services: active.map(serviceOf) },
        });
      return found;
    }
    if (one && active.length > 1)
      throw new FlotillaError('FLT_VALIDATION', `${app} has several services: name one (--service)`, {
        details: { app, services: active.map(serviceOf).sort() },
      });
    return active;
  }

  private serviceOrder(app: string): string[] {
    const ctx = this.apps.get(app);
    if (!ctx) return [];
    return dockerServiceOrder(dockerConfig(ctx.release).compose.services) ?? [];
  }

  private plans(ctx: AppContext, config: DockerRuntimeConfig['docker']): Map<string, ServicePlan> {
    const plans = new Map<string, ServicePlan>();
    for (const [service, def] of Object.entries(config.compose.services)) {
      const imageId = config.images[def.image] as string;
      plans.set(
        service,
        serviceSpec(
          this.names,
          ctx,
          service,
          def,
          imageId,
          config.stopTimeoutS ?? DOCKER_DEFAULTS.stopTimeoutS,
        ),
      );
    }
    return plans;
  }

  private async inspectService(app: string, service: string): Promise<Docker.ContainerInspectInfo | null> {
    try {
      return await this.call(() => this.docker.getContainer(this.names.container(app, service)).inspect());
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw error;
    }
  }

  /** Waits for the `depends_on` conditions of `service`. */
  private async waitForDependencies(
    ctx: AppContext,
    config: DockerRuntimeConfig['docker'],
    service: string,
    signal: AbortSignal,
  ): Promise<void> {
    const deps = config.compose.services[service]?.depends_on ?? {};
    const timeoutMs = config.health?.timeoutMs ?? DOCKER_DEFAULTS.timeoutMs;
    for (const [dep, { condition }] of Object.entries(deps)) {
      if (condition === 'service_started') continue;
      const started = performance.now();
      for (;;) {
        const info = await this.inspectService(ctx.app, dep);
        const state = info?.State;
        if (condition === 'service_healthy') {
          if (state?.Health?.Status === 'healthy' || (state?.Running && !state.Health)) break;
          if (state?.Health?.Status === 'unhealthy')
            throw unhealthy(dep, `is unhealthy, and ${service} depends on it being healthy`, info);
        } else if (
          state &&
          !state.Running &&
          !state.Restarting &&
          state.FinishedAt !== '0001-01-01T00:00:00Z'
        ) {
          if (state.ExitCode === 0) break;
          throw unhealthy(
            dep,
            `exited with code ${state.ExitCode}, and ${service} depends on its success`,
            info,
          );
        }
        if (performance.now() - started > timeoutMs)
          throw new FlotillaError(
            'FLT_HEALTH_CHECK_FAILED',
            `service ${service}: ${dep} did not reach ${condition} within ${timeoutMs} ms`,
          );
        if (signal.aborted) throw new FlotillaError('FLT_RUNTIME_FAILED', 'start interrupted');
        await sleep(DOCKER_DEFAULTS.pollMs, signal);
      }
    }
  }

  /** Start-then-stop's gate: the new container runs (and is healthy, with a healthcheck). */
  private async gate(
    ctx: AppContext,
    config: DockerRuntimeConfig['docker'],
    service: string,
    id: string,
    signal: AbortSignal,
  ): Promise<void> {
    const timeoutMs = config.health?.timeoutMs ?? DOCKER_DEFAULTS.timeoutMs;
    const windowMs = Math.min(config.health?.windowMs ?? DOCKER_DEFAULTS.windowMs, timeoutMs);
    const started = performance.now();
    let startedAt: string | null = null;
    for (;;) {
      const info = await this.call(() => this.docker.getContainer(id).inspect());
      startedAt ??= info.State.StartedAt;
      if (!info.State.Running || info.State.StartedAt !== startedAt)
        throw unhealthy(service, 'the new container stopped before it was healthy', info);
      const status = info.State.Health?.Status;
      if (status === 'unhealthy') throw unhealthy(service, 'the new container is unhealthy', info);
      const elapsed = performance.now() - started;
      if ((status === 'healthy' || (status === undefined && elapsed >= windowMs)) && !signal.aborted) return;
      if (elapsed > timeoutMs)
        throw new FlotillaError(
          'FLT_HEALTH_CHECK_FAILED',
          `${ctx.app}/${service}: the new container was not healthy within ${timeoutMs} ms`,
        );
      if (signal.aborted) throw new FlotillaError('FLT_RUNTIME_FAILED', 'start interrupted');
      await sleep(DOCKER_DEFAULTS.pollMs, signal);
    }
  }

  private async ensureNetwork(app: string): Promise<void> {
    const name = this.names.network(app);
    const found = await this.call(() => this.docker.listNetworks({ filters: { name: [name] } }));
    if (found.some((n) => n.Name === name)) return;
    try {
      await this.call(() =>
        this.docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: { [LABEL.owner]: this.names.owner, [LABEL.app]: app },
        }),
      );
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
  }

  private async ensureVolume(app: string, volume: string): Promise<void> {
    const name = this.names.volume(app, volume);
    try {
      await this.call(() => this.docker.getVolume(name).inspect());
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
      await this.call(() =>
        this.docker.createVolume({
          Name: name,
          Labels: { [LABEL.owner]: this.names.owner, [LABEL.app]: app, 'io.flotilla.volume': volume },
        }),
      );
    }
  }

  private async create(options: Docker.ContainerCreateOptions): Promise<string> {
    try {
      return (await this.call(() => this.docker.createContainer(options))).id;
    } catch (error) {
      // A crash after the create: the container is there under its name, with the same hash.
      if (statusOf(error) !== 409 || options.name === undefined) throw error;
      const info = await this.call(() => this.docker.getContainer(options.name as string).inspect());
      const labels = (options.Labels ?? {}) as Record<string, string>;
      if (
        info.Config.Labels?.[LABEL.hash] === labels[LABEL.hash] &&
        info.Config.Labels?.[LABEL.owner] === this.names.owner
      )
        return info.Id;
      throw new FlotillaError(
        'FLT_RUNTIME_FAILED',
        `a container named ${options.name} exists and is not this release's`,
        {
          cause: error,
        },
      );
    }
  }

  /** Stops a container and renames it `<name>.<hash12>`, replacing an identical parked one. */
  private async park(app: string, c: Info): Promise<void> {
    const config = this.apps.get(app);
    await this.stopContainer(c.Id, config ? dockerConfig(config.release).stopTimeoutS : undefined);
    const parked = this.names.parked(app, serviceOf(c), c.Labels[LABEL.hash] ?? '');
    if (nameOf(c) === parked) return;
    const existing = (await this.containers(app)).find((o) => nameOf(o) === parked && o.Id !== c.Id);
    if (existing) await this.remove(existing.Id);
    await this.rename(c.Id, parked);
  }

  private async rename(id: string, name: string): Promise<void> {
    await this.call(() => this.docker.getContainer(id).rename({ name }));
  }

  private async startContainer(id: string): Promise<void> {
    try {
      await this.call(() => this.docker.getContainer(id).start());
    } catch (error) {
      if (statusOf(error) === 304) return; // already running
      throw new FlotillaError(
        'FLT_RUNTIME_FAILED',
        `cannot start container ${id.slice(0, 12)}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    await this.neighbours?.announce(id); // never throws
  }

  private async stopContainer(id: string, stopTimeoutS: number | undefined): Promise<void> {
    try {
      await this.call(() =>
        this.docker.getContainer(id).stop({ t: stopTimeoutS ?? DOCKER_DEFAULTS.stopTimeoutS }),
      );
    } catch (error) {
      if (statusOf(error) !== 304 && statusOf(error) !== 404) throw error;
    }
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.call(() => this.docker.getContainer(id).remove({ force: true }));
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }
}

function nameOf(c: Info): string {
  return (c.Names[0] ?? '').replace(/^\//, '');
}

function serviceOf(c: Info): string {
  return c.Labels[LABEL.service] ?? '';
}

function unhealthy(service: string, what: string, info: Docker.ContainerInspectInfo | null): FlotillaError {
  const log = info?.State.Health?.Log?.at(-1);
  const output = log?.Output?.trim().split('\n').slice(-2).join(' | ');
  return new FlotillaError(
    'FLT_HEALTH_CHECK_FAILED',
    `service ${service}: ${what}${output ? ` (healthcheck: ${output})` : ''}`,
    { details: { service } },
  );
}

/**
 * Splits the engine's multiplexed stream (8-byte frame headers: type, size) into stdout and
 * stderr, pausing the engine's stream while a destination is full, so a command that writes
 * faster than the operator reads waits instead of filling the agent's memory (dockerode's
 * `demuxStream` writes on regardless).
 */
export function demuxWithBackpressure(
  source: NodeJS.ReadableStream,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
): void {
  let pending: Buffer = Buffer.alloc(0);
  source.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let full: NodeJS.WritableStream | null = null;
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      const target = pending[0] === 2 ? stderr : stdout;
      if (size > 0 && !target.write(pending.subarray(8, 8 + size))) full = target;
      pending = pending.subarray(8 + size);
    }
    if (full !== null) {
      source.pause();
      full.once('drain', () => source.resume());
    }
  });
}

/** Splits a non-streamed log body (8-byte frame headers) into stdout and stderr. */
function demuxBuffer(buffer: Buffer, onFrame: (type: number, payload: Buffer) => void): void {
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const type = buffer[offset] as number;
    const size = buffer.readUInt32BE(offset + 4);
    onFrame(type, buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
}
