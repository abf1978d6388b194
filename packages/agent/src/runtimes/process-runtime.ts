/** The `process` runtime: a supervised command from the release tree (docs/updates.md "Runtimes"). */
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { AppProcessStatus } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { resolveEnv } from '../secrets/opener.js';
import type { SecretOpener } from '../secrets/opener.js';
import type { ReleaseSpec } from '../model/release.js';
import { appEnv, processConfig } from './config.js';
import { healthWindow } from './health.js';
import { RotatingLog, readLogTail } from './rotating-log.js';
import { followProcessLogs } from './log-follow.js';
import type {
  AppContext,
  LogFollowOptions,
  LogLine,
  Runtime,
  ServiceAction,
  ServiceStatus,
} from './runtime.js';
import { Supervisor, stopLeftover } from './supervisor.js';

export const PROCESS_DEFAULTS = {
  stopTimeoutMs: 10_000,
  initialDelayMs: 1000,
  maxDelayMs: 60_000,
  logMaxBytes: 10 * 1024 * 1024,
  logKeep: 3,
  /**
   * The health window when the release sets no `health.windowMs`, with or without a probe: the
   * process must stay up this long or the update fails (docs/updates.md "Crash loops").
   */
  healthWindowMs: 10_000,
} as const;

interface Running {
  supervisor: Supervisor;
  logs: RotatingLog[];
  /** The app's environment, secrets opened: in memory only, for the health probes. */
  env: NodeJS.ProcessEnv;
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private readonly running = new Map<string, Running>();
  /** The release each app last started with: what an operator's `start` brings up again. */
  private readonly contexts = new Map<string, AppContext>();

  /** `secrets` opens the release's sealed secrets; without it a release that has any cannot start. */
  /** `onStatus(app)` is called when an app's process starts, exits or restarts on its own. */
  constructor(
    private readonly logger: Logger,
    private readonly secrets: SecretOpener | null = null,
    private readonly onStatus: (app: string) => void = () => undefined,
  ) {}

  /** The release's env with secrets opened (FLT_SECRET_* when one cannot be). */
  private async env(ctx: AppContext, env: Parameters<typeof resolveEnv>[0]): Promise<NodeJS.ProcessEnv> {
    const release = ctx.release;
    let values: Record<string, string> = {};
    if (release.secrets !== undefined && Object.keys(release.secrets).length > 0) {
      if (!this.secrets)
        throw new FlotillaError(
          'FLT_SECRET_MISSING',
          `${release.targetPath} has secrets, and this agent has no identity key to open them`,
        );
      values = await this.secrets.open(release);
    }
    return appEnv(ctx, resolveEnv(env, values));
  }

  validate(release: ReleaseSpec): void {
    processConfig(release);
  }

  async start(ctx: AppContext): Promise<void> {
    const config = processConfig(ctx.release);
    const env = await this.env(ctx, config.env ?? {});
    await this.stop(ctx.app, ctx.appDir);
    await mkdir(ctx.logDir, { recursive: true });
    await mkdir(ctx.dataDir, { recursive: true });
    const [program, ...args] = config.command as [string, ...string[]];
    const argv = [program.startsWith('./') ? resolve(ctx.releaseDir, program) : program, ...args];
    const logs = [
      new RotatingLog(
        join(ctx.logDir, 'stdout.log'),
        config.logs?.maxBytes ?? PROCESS_DEFAULTS.logMaxBytes,
        config.logs?.keep ?? PROCESS_DEFAULTS.logKeep,
      ),
      new RotatingLog(
        join(ctx.logDir, 'stderr.log'),
        config.logs?.maxBytes ?? PROCESS_DEFAULTS.logMaxBytes,
        config.logs?.keep ?? PROCESS_DEFAULTS.logKeep,
      ),
    ] as const;
    const supervisor = new Supervisor({
      argv,
      cwd: config.cwd === undefined ? ctx.releaseDir : resolve(ctx.releaseDir, config.cwd),
      env,
      policy: config.restart?.policy ?? 'always',
      initialDelayMs: config.restart?.initialDelayMs ?? PROCESS_DEFAULTS.initialDelayMs,
      maxDelayMs: config.restart?.maxDelayMs ?? PROCESS_DEFAULTS.maxDelayMs,
      stopTimeoutMs: config.stopTimeoutMs ?? PROCESS_DEFAULTS.stopTimeoutMs,
      pidFile: join(ctx.appDir, 'process.pid'),
      stdoutLog: logs[0],
      stderrLog: logs[1],
      logger: this.logger.child({ app: ctx.app }),
      onChange: () => this.onStatus(ctx.app),
    });
    this.running.set(ctx.app, { supervisor, logs: [...logs], env });
    this.contexts.set(ctx.app, ctx);
    supervisor.start();
  }

  async stop(app: string, appDir: string): Promise<void> {
    const entry = this.running.get(app);
    if (entry) {
      this.running.delete(app);
      await entry.supervisor.stop();
      for (const log of entry.logs) log.close();
    }
    await stopLeftover(join(appDir, 'process.pid'), PROCESS_DEFAULTS.stopTimeoutMs);
  }

  async health(ctx: AppContext, signal: AbortSignal): Promise<void> {
    const config = processConfig(ctx.release);
    const entry = this.running.get(ctx.app);
    if (!entry) throw new FlotillaError('FLT_HEALTH_CHECK_FAILED', `${ctx.app} is not running`);
    const { supervisor } = entry;
    const exitsAtStart = supervisor.exits;
    // Without a configured window the runtime's own signal still counts: an exit fails the update.
    const health = { ...config.health, windowMs: config.health?.windowMs ?? PROCESS_DEFAULTS.healthWindowMs };
    await healthWindow(health, {
      cwd: ctx.releaseDir,
      env: entry.env,
      signal,
      failure: () => {
        if (supervisor.spawnError !== null) return `the process could not start: ${supervisor.spawnError}`;
        if (supervisor.exits === exitsAtStart) return null;
        const exit = supervisor.lastExit;
        const how = exit?.signal ? `killed by ${exit.signal}` : `exit code ${String(exit?.code)}`;
        const tail = readLogTail(join(ctx.logDir, 'stderr.log'), 300)
          .trim()
          .split('\n')
          .slice(-2)
          .join(' | ');
        return `the process exited during the health window (${how})${tail ? `: ${tail}` : ''}`;
      },
    });
  }

  /** After an agent restart the committed release runs again. */
  adopt(ctx: AppContext): Promise<void> {
    return this.start(ctx);
  }

  status(app: string): AppProcessStatus | null {
    return this.running.get(app)?.supervisor.status() ?? null;
  }

  // Operator commands (docs/remote-access.md). A process app is one service, named after the app.

  private contextOf(app: string, service: string | undefined): AppContext {
    const ctx = this.contexts.get(app);
    if (!ctx)
      throw new FlotillaError('FLT_APP_NOT_INSTALLED', `${app} has not been started by this agent`, {
        details: { app },
      });
    if (service !== undefined && service !== app)
      throw new FlotillaError(
        'FLT_NOT_FOUND',
        `${app} is a process app: its only service is "${app}", not "${service}"`,
        { details: { app, service } },
      );
    return ctx;
  }

  async control(app: string, action: ServiceAction, service: string | undefined): Promise<void> {
    const ctx = this.contextOf(app, service);
    if (action === 'stop') return this.stop(app, ctx.appDir);
    if (action === 'start' && this.running.has(app)) return;
    // start() stops what runs first: a restart is a new process (and a new pid).
    await this.start(ctx);
  }

  logs(app: string, options: LogFollowOptions, onLine: (line: LogLine) => void): Promise<void> {
    const ctx = this.contextOf(app, options.service);
    return followProcessLogs(ctx.logDir, options, onLine);
  }

  async services(app: string): Promise<ServiceStatus[]> {
    this.contextOf(app, undefined);
    const supervisor = this.running.get(app)?.supervisor ?? null;
    const status = supervisor?.status() ?? null;
    const pid = supervisor?.pid ?? null;
    const usage = pid === null ? null : await processUsage(pid);
    return [
      {
        service: app,
        state: status?.state ?? 'stopped',
        health: 'none',
        restarts: status?.restarts ?? 0,
        ...(status?.state === 'running' && { startedAt: status.since }),
        ...(pid !== null && { pid }),
        ...(usage !== null && usage),
      },
    ];
  }

  /** A process app listens on the device itself. */
  async tunnelAddress(
    app: string,
    service: string | undefined,
    port: number,
  ): Promise<{ host: string; port: number }> {
    this.contextOf(app, service);
    return Promise.resolve({ host: '127.0.0.1', port });
  }

  /** The supervisor of a running app (tests, status). */
  supervisorOf(app: string): Supervisor | null {
    return this.running.get(app)?.supervisor ?? null;
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.running.entries()].map(async ([app, entry]) => {
        this.running.delete(app);
        await entry.supervisor.stop();
        for (const log of entry.logs) log.close();
      }),
    );
  }
}

/** CPU (percent of one CPU over 100 ms) and resident memory of a process, from /proc; null if gone. */
async function processUsage(pid: number): Promise<{ cpuPercent: number; memoryBytes: number } | null> {
  const ticks = async () => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };
  try {
    const first = await ticks();
    const at = performance.now();
    await new Promise((r) => setTimeout(r, 100));
    const used = (await ticks()) - first;
    const elapsedMs = performance.now() - at;
    const statm = await readFile(`/proc/${pid}/statm`, 'utf8');
    const residentPages = Number(statm.split(' ')[1]);
    // USER_HZ is 100 on Linux: one tick is 10 ms.
    return {
      cpuPercent: Math.round(((used * 10) / elapsedMs) * 1000) / 10,
      memoryBytes: residentPages * PAGE_BYTES,
    };
  } catch {
    return null;
  }
}

const PAGE_BYTES = 4096;
