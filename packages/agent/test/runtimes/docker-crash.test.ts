/**
 * Crash safety of the docker runtime: the agent's update engine (a child process) is SIGKILLed at
 * random points while it replaces containers; restarted, it converges to exactly the assigned
 * release, with no orphaned (parked or half-made) containers left.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dockerdAvailable, freePort, importBusyboxImage, startTestDockerd, tempDir } from '@flotilla/testkit';
import type { ReleaseSpec } from '../../src/model/release.js';
import { ownerId } from '../../src/runtimes/docker/engine.js';
import { buildRelease, serverStore, writeTree } from '../update/fixtures.js';
import { startObjectServer } from '../update/object-server.js';
import { getBody, shopConfig } from './docker-fixtures.js';

const COMPILED = import.meta.url.endsWith('.js');
const CHILD = fileURLToPath(
  new URL(COMPILED ? '../apply/crash-child.js' : '../apply/crash-child.ts', import.meta.url),
);
const CHILD_ARGS = COMPILED ? [CHILD] : ['--import', 'tsx', CHILD];
const KILLS = 8;
const skip = dockerdAvailable()
  ? false
  : 'dockerd or busybox-static is not installed (.ci/run installs them)';

function runChild(env: Record<string, string>, killAfterReadyMs: number | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, CHILD_ARGS, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      const before = output;
      output += b.toString();
      if (!before.includes('ready') && output.includes('ready') && killAfterReadyMs !== null)
        setTimeout(() => child.kill('SIGKILL'), killAfterReadyMs);
    });
    child.on('error', reject);
    child.on('close', () => resolve(output));
  });
}

void test(
  'docker runtime: SIGKILL during container updates converges to exactly the assigned release, no orphans',
  { skip, timeout: 900_000 },
  async (t) => {
    const d = await startTestDockerd(mkdtempSync(join(tmpdir(), 'flt-dockerd-')));
    t.after(() => d.destroy());
    const imageId = await importBusyboxImage(d, 'shop/bb:1');
    const base = tempDir(t, 'flt-dkcrash-');
    const store = await serverStore(t);
    const server = await startObjectServer(store);
    t.after(() => server.close());
    const port = await freePort();
    const releases: ReleaseSpec[] = [];
    // Each release changes both services, so an update stops, parks, creates and starts both.
    for (const [i, message] of ['one', 'two'].entries()) {
      const config = shopConfig({ imageId, port, message, worker: message, windowMs: 500 });
      releases.push(
        await buildRelease(
          store,
          writeTree(join(base, `tree-${i}`), { 'compose.json': JSON.stringify(config) }),
          {
            app: 'shop',
            version: String(i + 1),
            runtime: 'docker',
            config: config,
          },
        ),
      );
    }
    const dataDir = join(base, 'data');
    mkdirSync(dataDir, { recursive: true });
    const owner = ownerId(dataDir);
    const env = (target: ReleaseSpec) => ({
      FLT_CRASH_DATA_DIR: dataDir,
      FLT_CRASH_SERVER: server.url,
      FLT_CRASH_TARGET: JSON.stringify(target),
      DOCKER_HOST: d.host,
    });
    const ours = async () =>
      (
        await d.docker([
          'ps',
          '-a',
          '--filter',
          `label=io.flotilla.owner=${owner}`,
          '--format',
          '{{.Names}} {{.State}} {{.Label "io.flotilla.release"}}',
        ])
      )
        .split('\n')
        .filter(Boolean)
        .sort();
    const assertExactly = async (target: ReleaseSpec, message: string) => {
      assert.deepEqual(await ours(), [
        `fl-${owner}-shop-web running ${target.root}`,
        `fl-${owner}-shop-worker running ${target.root}`,
      ]);
      assert.equal(await getBody(port), message);
    };

    assert.match(await runChild(env(releases[0] as ReleaseSpec), null), /done/);
    await assertExactly(releases[0] as ReleaseSpec, 'one');
    let current = 0;
    for (let i = 0; i < KILLS; i++) {
      const next = 1 - current;
      const target = releases[next] as ReleaseSpec;
      // The child starts in ~0.5 s; an update takes a few seconds: kills land all over it.
      const output = await runChild(env(target), 300 + ((i * 797) % 3500));
      const killed = !/done|failed/.test(output);
      // Restarted, the agent finishes the transaction: exactly the new release.
      assert.match(await runChild(env(target), null), /done/);
      await assertExactly(target, next === 0 ? 'one' : 'two');
      current = next;
      t.diagnostic(`kill ${i}: ${killed ? 'killed mid-update' : 'finished before the kill'}`);
    }
  },
);
