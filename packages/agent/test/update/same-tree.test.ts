/**
 * A release is its tree and its signed version, runtime and config (docs/updates.md "What counts as
 * a change"): a config-only change or a version bump of the same tree runs the transaction (the app
 * restarts with the new config) without fetching anything, and both releases stay installed.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { releaseTargetPath } from '@flotilla/protocol';
import { MIGRATIONS } from '../../src/state/migrations.js';
import { openStateDatabase } from '../../src/state/db.js';
import { UpdateRecords } from '../../src/state/update-records.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { freePort, tempDir } from '@flotilla/testkit';
import { harness } from './engine-harness.js';
import { buildRelease, serverStore, writeTree } from './fixtures.js';

const MODE_APP =
  "require('node:http').createServer((q, s) => s.end(String(process.env.MODE))).listen(Number(process.env.PORT), '127.0.0.1');\n";

async function answer(port: number): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const text = await fetch(`http://127.0.0.1:${port}/`).then(
      (r) => r.text(),
      () => null,
    );
    if (text !== null) return text;
    await new Promise((r) => setTimeout(r, 30));
  }
  throw new Error('the app does not answer');
}

void test('same tree, new config or version: restarts with the new config, fetches nothing, commits', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const port = await freePort();
  const config = (mode: string) => ({
    process: {
      command: [process.execPath, './app.cjs'],
      env: { PORT: String(port), MODE: mode },
      stopTimeoutMs: 2000,
      health: { windowMs: 200 },
    },
  });
  const v1 = await buildRelease(store, writeTree(join(base, 'src'), { 'app.cjs': MODE_APP }), {
    app: 'web',
    version: '1',
    runtime: 'process',
    config: config('one'),
  });
  // The same version and tree, one environment variable changed.
  const v1b: ReleaseSpec = { ...v1, config: config('two') };
  // A version bump of the same tree and config.
  const v2: ReleaseSpec = { ...v1b, version: '2', targetPath: releaseTargetPath('web', '2', v1.root) };
  const h = await harness(t, store);
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  assert.equal(await answer(port), 'one');

  for (const [next, mode] of [
    [v1b, 'two'],
    [v2, 'two'],
  ] as const) {
    const sent = h.server.bytesSent;
    h.reports.length = 0;
    h.assign([next]);
    assert.equal(await h.converge(), true);
    const phases = h.reports.map((r) => r.phase);
    assert.deepEqual(phases, ['verifying', 'stopping', 'switching', 'starting', 'health', 'committed']);
    assert.equal(h.reports.at(-1)?.bytesFetched, 0);
    assert.equal(h.server.bytesSent, sent, 'nothing fetched for an unchanged tree');
    assert.equal(await answer(port), mode);
    assert.deepEqual(h.engine.records.installed('web').current, next);
  }
  const installed = h.engine.records.installed('web');
  assert.deepEqual(installed.previous, [v1b], 'the replaced release (same tree) is kept as previous');
  assert.deepEqual(readdirSync(join(h.dataDir, 'apps/web/releases')), [v1.root]);

  // Converging again is quiet: the release is up to date.
  h.reports.length = 0;
  assert.equal(await h.converge(), true);
  assert.deepEqual(h.reports, []);

  // The operator's rollback returns to the previous config of the same tree and holds v2 only.
  const outcome = await h.engine.rollback('web', new AbortController().signal);
  assert.equal(outcome.kind, 'rolled-back');
  assert.deepEqual(h.engine.records.installed('web').current, v1b);
  assert.equal(h.engine.records.installed('web').held?.root, v1.root);
  assert.equal(await answer(port), 'two');
  h.assign([v1]);
  assert.equal(await h.converge(), true, 'a release of the held tree with another config is installed');
  assert.equal(await answer(port), 'one');
});

void test('state.db migration 4 keeps the installed releases and holds an older agent recorded', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'state.db');
  const old = openStateDatabase(path, MIGRATIONS.slice(0, 3));
  const spec: ReleaseSpec = {
    app: 'web',
    version: '1',
    runtime: 'files',
    root: 'a'.repeat(64),
    targetPath: `web/1/${'a'.repeat(64)}`,
    config: { files: {} },
  };
  old
    .prepare('INSERT INTO app_release (app, root, release, role, since) VALUES (?, ?, ?, ?, ?)')
    .run('web', spec.root, JSON.stringify(spec), 'current', new Date().toISOString());
  old
    .prepare('INSERT INTO app_hold (app, rejected_root, reason, since) VALUES (?, ?, ?, ?)')
    .run('web', 'b'.repeat(64), 'FLT_X: bad', new Date().toISOString());
  old.close();
  const db = openStateDatabase(path);
  t.after(() => db.close());
  const installed = new UpdateRecords(db).installed('web');
  assert.deepEqual(installed.current, spec);
  assert.deepEqual(installed.held, { id: null, root: 'b'.repeat(64), reason: 'FLT_X: bad' });
  // A commit of another release of the same tree keeps both (they were one row before).
  const next = { ...spec, version: '2', targetPath: `web/2/${spec.root}` };
  new UpdateRecords(db).commit('web', next, spec, 1);
  assert.deepEqual(new UpdateRecords(db).installed('web'), { current: next, previous: [spec], held: null });
});
