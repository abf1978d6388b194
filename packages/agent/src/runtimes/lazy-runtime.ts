/**
 * A runtime whose module is imported at its first use, so an agent none of whose apps uses that
 * kind never loads it (the docker runtime with dockerode; docs/agent-lifecycle.md "Footprint").
 * Register one by kind in the engine's runtimes, e.g.
 *
 * ```ts
 * docker: new LazyRuntime('docker', async () => {
 *   const { DockerRuntime } = await import('./docker/runtime.js');
 *   return new DockerRuntime(…);
 * }),
 * ```
 *
 * The engine awaits `ready()` before it validates a release of that kind (validation is the one
 * synchronous call); every other call loads the runtime first, except `close` and `status`, which
 * have nothing to do while it is not loaded. Every optional method of Runtime is passed on: one
 * missing here is skipped silently by callers that use `?.` (a test checks it).
 */
import { FlotillaError } from '@flotilla/protocol';
import type { AppProcessStatus, RuntimeKind } from '@flotilla/protocol';
import type { ReleaseSpec } from '../model/release.js';
import type {
  AppContext,
  ExecIo,
  LogFollowOptions,
  LogLine,
  Runtime,
  ServiceAction,
  ServiceStatus,
} from './runtime.js';

export class LazyRuntime implements Runtime {
  private loaded: Runtime | null = null;
  private loading: Promise<Runtime> | null = null;

  constructor(
    readonly kind: RuntimeKind,
    private readonly load: () => Promise<Runtime>,
  ) {}

  /** Imports and creates the runtime, once (a failed import is tried again at the next call). */
  ready(): Promise<Runtime> {
    this.loading ??= this.load().then(
      (runtime) => (this.loaded = runtime),
      (error: unknown) => {
        this.loading = null;
        throw new FlotillaError('FLT_RUNTIME_UNSUPPORTED', `the ${this.kind} runtime cannot be loaded`, {
          cause: error,
          details: { runtime: this.kind },
        });
      },
    );
    return this.loading;
  }

  /** Whether the runtime's module has been loaded (tests, footprint). */
  isLoaded(): boolean {
    return this.loaded !== null;
  }

  validate(release: ReleaseSpec): void {
    if (this.loaded === null)
      throw new FlotillaError('FLT_INTERNAL', `the ${this.kind} runtime was not loaded before validation`);
    this.loaded.validate(release);
  }

  async start(ctx: AppContext, signal: AbortSignal): Promise<void> {
    return (await this.ready()).start(ctx, signal);
  }

  async prepare(ctx: AppContext, signal: AbortSignal): Promise<void> {
    await (await this.ready()).prepare?.(ctx, signal);
  }

  async expect(release: ReleaseSpec): Promise<void> {
    await (await this.ready()).expect?.(release);
  }

  async adopt(ctx: AppContext): Promise<void> {
    return (await this.ready()).adopt(ctx);
  }

  async stop(app: string, appDir: string): Promise<void> {
    return (await this.ready()).stop(app, appDir);
  }

  async health(ctx: AppContext, signal: AbortSignal): Promise<void> {
    return (await this.ready()).health(ctx, signal);
  }

  /**
   * Passed on (the docker runtime removes its parked containers here); a runtime without it has
   * nothing kept to drop. Not loading one that is not loaded would leave a previous agent
   * process's parked containers behind, so it loads.
   */
  async settle(app: string, current: AppContext | null): Promise<void> {
    await (await this.ready()).settle?.(app, current);
  }

  async close(): Promise<void> {
    await this.loaded?.close();
  }

  status(app: string): AppProcessStatus | null {
    return this.loaded?.status?.(app) ?? null;
  }

  async control(app: string, action: ServiceAction, service: string | undefined): Promise<void> {
    const runtime = await this.ready();
    if (runtime.control === undefined) throw this.unsupported('control');
    return runtime.control(app, action, service);
  }

  async logs(app: string, options: LogFollowOptions, onLine: (line: LogLine) => void): Promise<void> {
    const runtime = await this.ready();
    if (runtime.logs === undefined) throw this.unsupported('logs');
    return runtime.logs(app, options, onLine);
  }

  async exec(
    app: string,
    service: string | undefined,
    argv: readonly string[],
    io: ExecIo,
  ): Promise<{ exitCode: number }> {
    const runtime = await this.ready();
    if (runtime.exec === undefined) throw this.unsupported('exec');
    return runtime.exec(app, service, argv, io);
  }

  async services(app: string): Promise<ServiceStatus[]> {
    const runtime = await this.ready();
    if (runtime.services === undefined) throw this.unsupported('services');
    return runtime.services(app);
  }

  async tunnelAddress(
    app: string,
    service: string | undefined,
    port: number,
  ): Promise<{ host: string; port: number }> {
    const runtime = await this.ready();
    if (runtime.tunnelAddress === undefined) throw this.unsupported('tunnelAddress');
    return runtime.tunnelAddress(app, service, port);
  }

  private unsupported(command: string): FlotillaError {
    return new FlotillaError(
      'FLT_RUNTIME_UNSUPPORTED',
      `the ${this.kind} runtime has no ${command} command`,
      {
        details: { runtime: this.kind, command },
      },
    );
  }
}
