/** An UpdateEngine on a temp data dir, fed by an ObjectServer, with assignments set by the test. */
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { isAppStatusReport } from '@flotilla/protocol';
import type { AppStatusReport, UpdateReport } from '@flotilla/protocol';
import { verifyTree } from '@flotilla/store';
import type { FsStore } from '@flotilla/store';
import type { Logger } from 'pino';
import type { StageReuse, StageVerify } from '../../src/apply/context.js';
import type { DiskProbe } from '../../src/fetch/disk.js';
import type { SecretOpener } from '../../src/secrets/opener.js';
import type { StateDatabase } from '../../src/state/db.js';
import { HttpFetcher } from '../../src/fetch/http-fetcher.js';
import { UpdateEngine } from '../../src/update/engine.js';
import type { UpdateEngineOptions } from '../../src/update/engine.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { tempDir } from '@flotilla/testkit';
import { quietLogger, stateDb } from './fixtures.js';
import { startObjectServer } from './object-server.js';
import type { ObjectServer } from './object-server.js';

export interface Harness {
  dataDir: string;
  db: StateDatabase;
  engine: UpdateEngine;
  server: ObjectServer;
  reports: UpdateReport[];
  /** Process status reports, apart from the update reports. */
  statuses: AppStatusReport[];
  assign: (releases: ReleaseSpec[]) => void;
  converge: () => Promise<boolean>;
}

export async function harness(
  t: TestContext,
  store: FsStore,
  options: {
    disk?: DiskProbe;
    dataDir?: string;
    keepPrevious?: number;
    cacheMaxBytes?: number;
    stageReuse?: StageReuse;
    stageVerify?: StageVerify;
    deltaThreads?: number;
    secrets?: SecretOpener;
    logger?: Logger;
    runtimes?: UpdateEngineOptions['runtimes'];
  } = {},
): Promise<Harness> {
  const dataDir = options.dataDir ?? join(tempDir(t, 'flt-upd-'), 'data');
  const db = stateDb(t, dataDir);
  const server = await startObjectServer(store);
  t.after(() => server.close());
  const engine = await UpdateEngine.open({
    dataDir,
    db,
    logger: options.logger ?? quietLogger(),
    keepPrevious: options.keepPrevious,
    cacheMaxBytes: options.cacheMaxBytes,
    disk: options.disk,
    stageReuse: options.stageReuse,
    stageVerify: options.stageVerify,
    deltaThreads: options.deltaThreads,
    ...(options.secrets && { secrets: options.secrets }),
    ...(options.runtimes && { runtimes: options.runtimes }),
  });
  t.after(async () => {
    await engine.close();
    db.close();
  });
  const reports: UpdateReport[] = [];
  const statuses: AppStatusReport[] = [];
  let assigned: ReleaseSpec[] = [];
  const fetcher = new HttpFetcher({
    baseUrl: server.url,
    headers: () => Promise.resolve({ authorization: 'Bearer test' }),
    partialDir: engine.layout.partialDir,
  });
  engine.attach({
    // As tufAssignment: the releases are told ahead, then their root objects are fetched.
    assignment: async (_signal, ahead) => {
      ahead?.(assigned);
      for (const r of assigned)
        if (!(await engine.cache.has(r.root))) await fetcher.fetch([r.root], engine.cache);
      return assigned;
    },
    fetcher,
    report: (r) => (isAppStatusReport(r) ? statuses.push(r) : reports.push(r)),
  });
  return {
    dataDir,
    db,
    engine,
    server,
    reports,
    statuses,
    assign: (releases) => {
      assigned = releases;
    },
    converge: () => engine.converge(new AbortController().signal),
  };
}

/** `app`'s current release is `root`, and its tree on disk verifies against it. */
export async function assertCurrent(h: Harness, app: string, root: string): Promise<void> {
  assert.equal(h.engine.records.installed(app).current?.root, root);
  const dir = realpathSync(join(h.dataDir, 'apps', app, 'current'));
  const result = await verifyTree(h.engine.cache, dir, root);
  assert.ok(result.ok, JSON.stringify(result.problems));
}
