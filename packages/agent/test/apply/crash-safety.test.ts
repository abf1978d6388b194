/**
 * Crash safety (docs/updates.md): the engine runs in a child process that is SIGKILLed at random
 * points during download and apply. After each kill the app's `current` is exactly the old or the
 * new release, complete (verifyTree against its manifest); a restart finishes the update by itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { verifyTree } from '@flotilla/store';
import { openStateDatabase } from '../../src/state/db.js';
import { UpdateRecords } from '../../src/state/update-records.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { tempDir } from '@flotilla/testkit';
import { buildRelease, randomFiles, serverStore, writeTree } from '../update/fixtures.js';
import { startObjectServer } from '../update/object-server.js';

// Compiled (npm test) the child is the sibling .js; run from source with tsx, the .ts through tsx.
const COMPILED = import.meta.url.endsWith('.js');
const CHILD = fileURLToPath(new URL(COMPILED ? './crash-child.js' : './crash-child.ts', import.meta.url));
const CHILD_ARGS = COMPILED ? [CHILD] : ['--import', 'tsx', CHILD];
const KILLS = 50;

interface ChildRun {
  output: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From "ready" to exit, when not killed. */
  workMs: number;
}

function runChild(env: Record<string, string>, killAfterReadyMs: number | null): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, CHILD_ARGS, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    let readyAt = 0;
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString();
      if (readyAt === 0 && output.includes('ready')) {
        readyAt = performance.now();
        if (killAfterReadyMs !== null) setTimeout(() => child.kill('SIGKILL'), killAfterReadyMs);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ output, code, signal, workMs: performance.now() - readyAt }),
    );
  });
}

void test(
  'SIGKILL at 50+ random points during download and apply: always the old or the new release, complete; a restart finishes',
  { timeout: 600_000 },
  async (t) => {
    const store = await serverStore(t);
    const base = tempDir(t, 'flt-crash-');
    const files = randomFiles(48, 24_000);
    const config = { files: { path: join(base, 'installed') } };
    const v1 = await buildRelease(store, writeTree(join(base, 'v1'), files), {
      app: 'app',
      version: '1',
      config,
    });
    // v2 and v3 edit six files in place (they come as deltas, so kills land in the delta phase
    // too); v3 also adds six new files and v2 replaces two outright (they come as chunks).
    const edited = (seed: number) =>
      Object.fromEntries(
        Object.entries(files)
          .slice(0, 6)
          .map(([path, bytes]) => {
            const copy = Buffer.from(bytes);
            randomBytes(64).copy(copy, (seed * 997 + path.length * 131) % (copy.length - 64));
            return [path, copy];
          }),
      );
    const v2 = await buildRelease(
      store,
      writeTree(join(base, 'v2'), { ...files, ...edited(1), ...randomFiles(2, 24_000, 'f') }),
      {
        app: 'app',
        version: '2',
        config,
      },
    );
    const v3 = await buildRelease(
      store,
      writeTree(join(base, 'v3'), { ...files, ...edited(2), ...randomFiles(6, 24_000, 'g') }),
      {
        app: 'app',
        version: '3',
        config,
      },
    );
    const server = await startObjectServer(store);
    server.deltas = 'ok';
    t.after(() => server.close());
    const dataDir = join(base, 'data');
    const env = (target: ReleaseSpec) => ({
      FLT_CRASH_DATA_DIR: dataDir,
      FLT_CRASH_SERVER: server.url,
      FLT_CRASH_TARGET: JSON.stringify(target),
      FLT_CRASH_BPS: String(1_000_000),
    });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dataDir, { recursive: true });

    const first = await runChild(env(v1), null);
    assert.match(first.output, /done/);
    const releases = [v1, v2, v3];
    const byRoot = new Map(releases.map((r) => [r.root, r]));
    const currentRoot = () => {
      const link = readlinkSync(join(dataDir, 'apps/app/current'));
      const root = link.replace(/^releases\//, '');
      assert.ok(byRoot.has(root), `current points at ${link}`);
      return root;
    };
    const assertComplete = async (root: string) => {
      const result = await verifyTree(store, join(dataDir, 'apps/app/releases', root), root);
      assert.ok(result.ok, JSON.stringify(result.problems.slice(0, 3)));
    };

    // A full update measured once, so that kills spread over the whole of one.
    const timeUpdate = async (target: ReleaseSpec) => {
      const run = await runChild(env(target), null);
      assert.match(run.output, /done/);
      return run.workMs;
    };
    let spanMs = 0;
    let killsDuringWork = 0;
    for (let i = 0; killsDuringWork < KILLS; i++) {
      assert.ok(i < KILLS * 3, `only ${killsDuringWork} of ${i} kills landed before the child finished`);
      const from = currentRoot();
      const target = releases.filter((r) => r.root !== from)[i % 2] as ReleaseSpec;
      if (i % 10 === 0) {
        // The span of a whole update, measured again now and then (the cache and disk warm up).
        spanMs = Math.max(200, (await timeUpdate(target)) * 1.1);
        continue;
      }
      const killed = await runChild(env(target), Math.random() * spanMs);
      if (killed.signal === 'SIGKILL') killsDuringWork += 1;
      const after = currentRoot();
      assert.ok(after === from || after === target.root, `iteration ${i}: ${after} is neither old nor new`);
      await assertComplete(after);
      assert.ok(existsSync(join(base, 'installed')));

      const restarted = await runChild(env(target), null);
      assert.match(restarted.output, /done/, `iteration ${i}: restart did not finish`);
      assert.equal(currentRoot(), target.root);
      await assertComplete(target.root);
    }
    const db = openStateDatabase(join(dataDir, 'state.db'));
    t.after(() => db.close());
    const records = new UpdateRecords(db);
    assert.equal(records.journal('app'), null);
    assert.equal(records.installed('app').current?.root, currentRoot());
    assert.ok(server.deltaPairs.length > 0, 'the updates asked for deltas');
  },
);
