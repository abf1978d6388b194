import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import { logFormatOption, logLevelOption } from '../../args.js';
import { startGatewayWorker } from '../../gateway/worker.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { chooseLogFormat, createLogger } from '../../process/logger.js';
import type { LogFormat } from '../../process/logger.js';
import { handleShutdownSignals } from '../../process/signals.js';

interface WorkerOptions {
  redis?: string;
  config?: string;
  dataDir?: string;
  database?: string;
  gatewayConfig?: string;
  concurrency?: string;
  logLevel?: string;
  logFormat?: LogFormat;
}

export function registerGatewayCommands(program: Command, io: CliIo): void {
  const group = program.command('gateway').description('the image gateway: conversion workers');
  const cmd = group
    .command('worker')
    .description(
      "take image imports from Redis and convert them until stopped (needs the server's database: same --config or --database)",
    )
    .option(
      '--redis <url>',
      "redis://HOST:PORT, the same as the server's --redis (default: $FLOTILLA_REDIS_URL)",
    )
    .option(
      '--config <file>',
      "the server's YAML configuration, for its database and data dir (default: $FLOTILLA_CONFIG)",
    )
    .option('--data-dir <dir>', "the server's data dir (default ./.flotilla/server)")
    .option('--database <url>', 'sqlite:PATH (same machine only) or postgres://user@host/db')
    .option(
      '--gateway-config <file>',
      'image gateway configuration, YAML (default: $FLOTILLA_GATEWAY_CONFIG)',
    )
    .option('--concurrency <n>', "imports at once (default: the gateway configuration's, else 2)")
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts: WorkerOptions) => {
      const redisUrl = opts.redis ?? (io.env.FLOTILLA_REDIS_URL || undefined);
      if (redisUrl === undefined || !/^rediss?:\/\//.test(redisUrl))
        throw new FlotillaError('FLT_CONFIG_INVALID', 'a worker needs --redis redis://HOST:PORT', {
          details: { problems: ['--redis: required (redis://HOST:PORT)'] },
        });
      const concurrency = opts.concurrency === undefined ? undefined : Number(opts.concurrency);
      if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1))
        throw new FlotillaError('FLT_CONFIG_INVALID', '--concurrency must be a whole number >= 1', {
          details: { problems: ['--concurrency: must be a whole number >= 1'] },
        });
      const { resolveServerConfig } = await import('@flotilla/server');
      const { registryImporter } = await import('@flotilla/gateway');
      const server = resolveServerConfig({
        flags: {
          ...(opts.config === undefined ? {} : { config: opts.config }),
          ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
          ...(opts.database === undefined ? {} : { database: opts.database }),
          ...(opts.logLevel === undefined ? {} : { logLevel: opts.logLevel }),
        },
        env: { ...io.env },
      });
      const isTTY = io.stdout.isTTY === true;
      const log = await createLogger({
        level: server.logLevel,
        format: chooseLogFormat(opts.logFormat ?? io.env.FLOTILLA_LOG_FORMAT, server.logFormat, isTTY),
        destination: io.stdout,
        color: isTTY,
      });
      const worker = await startGatewayWorker({
        database: server.database,
        dataDir: server.dataDir,
        gatewayConfig: opts.gatewayConfig ?? (io.env.FLOTILLA_GATEWAY_CONFIG || undefined),
        redisUrl,
        concurrency,
        log,
        importer: registryImporter(),
      });
      io.stderr.write(`flotilla gateway worker ${worker.workerId} taking jobs from ${redisUrl}\n`);
      const shutdown = handleShutdownSignals({
        signals: io.signals,
        exit: io.exit,
        log: (message) => log.info(message),
        stop: () => worker.close(),
      });
      try {
        await shutdown.stopped;
        log.info('gateway worker stopped');
      } finally {
        shutdown.dispose();
      }
    });
  examples(cmd, [
    'flotilla gateway worker --redis redis://127.0.0.1:6379',
    'flotilla gateway worker --redis redis://queue.internal:6379 --database postgres://flotilla@db.internal/flotilla --concurrency 4',
  ]);
}
