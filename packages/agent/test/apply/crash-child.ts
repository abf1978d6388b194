/**
 * The agent's update engine in a child process, for the crash-safety test: recovers, converges to
 * the release in FLT_CRASH_TARGET, prints "ready" once open and "done" at the end. The parent
 * SIGKILLs it at random points.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { HttpFetcher } from '../../src/fetch/http-fetcher.js';
import { openStateDatabase } from '../../src/state/db.js';
import { UpdateEngine } from '../../src/update/engine.js';
import type { ReleaseSpec } from '../../src/model/release.js';

const dataDir = process.env.FLT_CRASH_DATA_DIR as string;
const target = JSON.parse(process.env.FLT_CRASH_TARGET as string) as ReleaseSpec;
const db = openStateDatabase(join(dataDir, 'state.db'));
const engine = await UpdateEngine.open({
  dataDir,
  db,
  logger: pino({ level: process.env.FLT_TEST_LOG ?? 'silent' }),
  // No previous release and an empty cache cap: every update downloads and stages.
  keepPrevious: 0,
  cacheMaxBytes: 0,
});
const fetcher = new HttpFetcher({
  baseUrl: process.env.FLT_CRASH_SERVER as string,
  headers: () => Promise.resolve({}),
  partialDir: engine.layout.partialDir,
  bytesPerSecond: Number(process.env.FLT_CRASH_BPS ?? 0),
  batchSize: 8,
  concurrency: 2,
});
engine.attach({
  assignment: async () => {
    if (!(await engine.cache.has(target.root))) await fetcher.fetch([target.root], engine.cache);
    return [target];
  },
  fetcher,
  report: () => undefined,
});
process.stdout.write('ready\n');
const signal = new AbortController().signal;
await engine.start(signal);
const ok = await engine.converge(signal);
await engine.close();
db.close();
process.stdout.write(ok ? 'done\n' : 'failed\n');
