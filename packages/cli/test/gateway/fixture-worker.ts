/**
 * A gateway worker process for tests: the real worker (startGatewayWorker: database, BullMQ,
 * runner, delivery) with the fixture importer. Configured by environment; stops on SIGTERM.
 */
import pino from 'pino';
import { startGatewayWorker } from '../../src/gateway/worker.js';
import { fixtureImporter } from './fixture-importer.js';

const env = process.env;
const worker = await startGatewayWorker({
  database: env.FIXTURE_DATABASE ?? '',
  dataDir: env.FIXTURE_DATA_DIR ?? '',
  gatewayConfig: env.FIXTURE_GATEWAY_CONFIG,
  redisUrl: env.FIXTURE_REDIS ?? '',
  concurrency: Number(env.FIXTURE_CONCURRENCY ?? '1'),
  log: pino({ level: 'warn' }),
  importer: fixtureImporter(env.FIXTURE_GATE === undefined ? {} : { gate: env.FIXTURE_GATE }),
  bull: { lockDurationMs: 3000, stalledIntervalMs: 1000, prefix: env.FIXTURE_PREFIX ?? 'bull' },
  workerId: env.FIXTURE_WORKER_ID ?? 'fixture-worker',
});
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void worker.close().then(() => process.exit(0));
});
