/** `flotilla loader` and the agent release's health probe; the agent package is loaded only here. */
import { fileURLToPath } from 'node:url';
import { FlotillaError } from '@flotilla/protocol';
import type { LoaderExit } from '@flotilla/agent';
import type { CliIo } from '../io.js';
import { chooseLogFormat, createLogger } from '../process/logger.js';
import type { LogFormat } from '../process/logger.js';
import { handleShutdownSignals } from '../process/signals.js';

export interface LoaderRun {
  installDir: string;
  healthWindowMs: number;
  agentArgs: readonly string[];
  /** Timer mode: one update pass (LoaderOptions.once). */
  once?: boolean;
  logLevel: string;
  logFormat?: LogFormat;
}

export async function runLoader(io: CliIo, run: LoaderRun): Promise<LoaderExit> {
  const { Loader } = await import('@flotilla/agent');
  const dataDir = optionValue(run.agentArgs, '--data-dir') ?? io.env.FLOTILLA_DATA_DIR;
  if (dataDir === undefined)
    throw new FlotillaError('FLT_CONFIG_INVALID', "the agent's --data-dir is required after --", {
      details: { problems: ['--data-dir: required (the handover files live there)'] },
    });
  const isTTY = io.stdout.isTTY === true;
  const logger = (
    await createLogger({
      level: run.logLevel,
      format: chooseLogFormat(run.logFormat ?? io.env.FLOTILLA_LOG_FORMAT, 'json', isTTY),
      destination: io.stdout,
      color: isTTY,
    })
  ).child({ component: 'loader' });
  const controller = new AbortController();
  const loader = new Loader({
    installDir: run.installDir,
    agentDataDir: dataDir,
    agentArgs: ['agent', ...run.agentArgs],
    healthWindowMs: run.healthWindowMs,
    logger,
    env: { ...io.env },
    selfFile: bundleEntry() ?? fileURLToPath(import.meta.url),
    once: run.once === true,
  });
  const running = loader.run(controller.signal);
  const shutdown = handleShutdownSignals({
    signals: io.signals,
    exit: io.exit,
    log: (message) => logger.info(message),
    stop: async () => {
      controller.abort();
      await running;
    },
    forceAfterMs: 40_000,
  });
  try {
    return await running;
  } finally {
    shutdown.dispose();
  }
}

export async function runProbe(io: CliIo): Promise<number> {
  const { runLoaderProbe } = await import('@flotilla/agent');
  const appDataDir = io.env.FLOTILLA_APP_DATA;
  if (appDataDir === undefined) {
    io.stderr.write('FLOTILLA_APP_DATA is not set: the update engine runs this probe\n');
    return 1;
  }
  return runLoaderProbe({ releaseDir: io.cwd, appDataDir, stdout: io.stdout, stderr: io.stderr });
}

function optionValue(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === name) return args[i + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
}

/**
 * In the agent bundle, the entry file (lib/flotilla-agent.mjs): it names every chunk by its content
 * hash, so it differs whenever any of the loader's code does (this module may sit in a chunk).
 */
function bundleEntry(): string | undefined {
  const entry = process.argv[1];
  return entry !== undefined && entry.endsWith('/lib/flotilla-agent.mjs') ? entry : undefined;
}
