/** The `process` runtime: a supervised command from the release tree (docs/updates.md "Runtimes"). */
import { mkdir } from 'node:fs/promises';
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
import type { AppContext, Runtime } from './runtime.js';
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
