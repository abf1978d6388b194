/**
 * The docker runtime against a real, private dockerd (docs/containers.md): a two-service compose
 * app deployed through the update engine; a change to one service recreates only that container;
 * the named volume survives; a release whose healthcheck fails rolls back to the old containers;
 * containers the agent did not create are untouched; the operator commands; dockerd stopped and
 * back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { dockerdAvailable, freePort, importBusyboxImage, startTestDockerd, tempDir } from '@flotilla/testkit';
import type { TestDockerd } from '@flotilla/testkit';
import { DockerRuntime } from '../../src/runtimes/docker/docker-runtime.js';
import { harness } from '../update/engine-harness.js';
import { buildRelease, quietLogger, serverStore, writeTree } from '../update/fixtures.js';
import { getBody, shopConfig } from './docker-fixtures.js';

const skip = dockerdAvailable()
  ? false
  : 'dockerd or busybox-static is not installed (.ci/run installs them)';

interface Inspect {
  Id: string;
  Name: string;
  State: { Running: boolean; StartedAt: string };
}

async function inspect(d: TestDockerd, name: string): Promise<Inspect> {
  return (JSON.parse(await d.docker(['inspect', name])) as Inspect[])[0] as Inspect;
}

/** Names of the containers this agent (its owner label) has on the engine, all states. */
async function ours(d: TestDockerd, owner: string): Promise<string[]> {
  const out = await d.docker([
    'ps',
    '-a',
    '--filter',
    `label=io.flotilla.owner=${owner}`,
    '--format',
    '{{.Names}}',
  ]);
  return out.split('\n').filter(Boolean).sort();
}

async function until<T>(what: string, probe: () => Promise<T | null>, tries = 120): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== null) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

void test(
  'docker runtime: deploy, partial update, volume, rollback, operator commands, engine outage',
  { skip, timeout: 600_000 },
  async (t) => {
    const base = tempDir(t, 'flt-dk-');
    const d = await startTestDockerd(mkdtempSync(join(tmpdir(), 'flt-dockerd-')));
    t.after(() => d.destroy());
    process.env.DOCKER_HOST = d.host;
    const imageId = await importBusyboxImage(d, 'shop/bb:1');
    // A container Flotilla did not create, even labelled like an app of ours: never touched.
    await d.docker([
      'run',
      '-d',
      '--name',
      'foreign',
      '--label',
      'io.flotilla.app=shop',
      'shop/bb:1',
      'sleep',
      '3600',
    ]);
    const foreign = await inspect(d, 'foreign');

    const store = await serverStore(t);
    const h = await harness(t, store, { dataDir: join(base, 'data') });
    const runtime = new DockerRuntime({ logger: quietLogger(), dataDir: h.dataDir, host: d.host });
    t.after(() => runtime.close());
    const owner = runtime.names.owner;
    const port = await freePort();
    const release = async (version: string, config: object) =>
      buildRelease(
        store,
        writeTree(join(base, `tree-${version}`), { 'compose.json': JSON.stringify(config) }),
        {
          app: 'shop',
          version,
          runtime: 'docker',
          config: config as Record<string, unknown>,
        },
      );
    const web = `fl-${owner}-shop-web`;
    const worker = `fl-${owner}-shop-worker`;

    // v1: both services up, the port answers, healthy.
    const v1 = await release('1', shopConfig({ imageId, port, message: 'v1', worker: 'a' }));
    h.assign([v1]);
    assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
    assert.equal(await getBody(port), 'v1');
    assert.deepEqual(await ours(d, owner), [web, worker]);
    const services = await runtime.services('shop');
    assert.deepEqual(
      services.map((s) => [s.service, s.state, s.health]),
      [
        ['web', 'running', 'healthy'],
        ['worker', 'running', 'none'],
      ],
    );
    assert.ok(services.every((s) => typeof s.memoryBytes === 'number'));

    // exec: write into the named volume.
    const out = new PassThrough();
    let written = '';
    out.on('data', (c: Buffer) => (written += c.toString()));
    const exec = await runtime.exec('shop', 'worker', ['sh', '-c', 'echo kept > /data/keep && echo ok'], {
      stdin: null,
      stdout: out,
      stderr: new PassThrough(),
      signal: new AbortController().signal,
    });
    assert.equal(exec.exitCode, 0);
    assert.match(written, /ok/);
    await assert.rejects(
      runtime.exec('shop', undefined, ['true'], {
        stdin: null,
        stdout: out,
        stderr: out,
        signal: new AbortController().signal,
      }),
      {
        code: 'FLT_VALIDATION',
      },
    );
    await assert.rejects(runtime.services('nope'), { code: 'FLT_APP_NOT_INSTALLED' });

    // v2 changes the worker only: web keeps its container and start time; the volume's data stays.
    const webV1 = await inspect(d, web);
    const workerV1 = await inspect(d, worker);
    const v2 = await release('2', shopConfig({ imageId, port, message: 'v1', worker: 'b' }));
    h.assign([v2]);
    assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
    const webV2 = await inspect(d, web);
    const workerV2 = await inspect(d, worker);
    assert.equal(webV2.Id, webV1.Id);
    assert.equal(webV2.State.StartedAt, webV1.State.StartedAt);
    assert.notEqual(workerV2.Id, workerV1.Id);
    assert.deepEqual(await ours(d, owner), [web, worker], 'the old worker is removed after the commit');
    assert.equal((await d.docker(['exec', worker, 'cat', '/data/keep'])).trim(), 'kept');

    // v3: web's healthcheck never passes: rolled back by itself, the old web container serves again.
    const v3 = await release(
      '3',
      shopConfig({ imageId, port, message: 'v3', worker: 'b', failingHealth: true }),
    );
    h.assign([v3]);
    await h.converge();
    const rolled = h.reports.find((r) => r.phase === 'rolled-back');
    assert.equal(rolled?.error?.code, 'FLT_HEALTH_CHECK_FAILED', JSON.stringify(h.reports.slice(-4)));
    assert.match(rolled?.error?.message ?? '', /web/);
    assert.equal(h.engine.records.installed('shop').current?.root, v2.root);
    assert.equal(await getBody(port), 'v1');
    const webBack = await inspect(d, web);
    assert.equal(webBack.Id, webV1.Id, 'the old web container itself is back');
    assert.equal((await inspect(d, worker)).Id, workerV2.Id);
    assert.deepEqual(await ours(d, owner), [web, worker], 'the failed container is removed');
    assert.equal((await d.docker(['exec', worker, 'cat', '/data/keep'])).trim(), 'kept');

    // Operator commands: logs (tail and follow), stop/start one service, the tunnel's address.
    const lines: string[] = [];
    await runtime.logs(
      'shop',
      { service: 'worker', tail: 3, follow: false, signal: new AbortController().signal },
      (l) => lines.push(l.text),
    );
    assert.ok(lines.length > 0 && lines.every((l) => l === 'tick b'), JSON.stringify(lines));
    const follow = new AbortController();
    const followed: number[] = [];
    const following = runtime.logs(
      'shop',
      { service: 'worker', tail: 0, follow: true, signal: follow.signal },
      (l) => {
        if (l.at !== undefined) followed.push(l.at);
        if (followed.length >= 2) follow.abort();
      },
    );
    await following;
    assert.ok(followed.length >= 2);
    await runtime.control('shop', 'stop', 'worker');
    assert.equal((await inspect(d, worker)).State.Running, false);
    await runtime.control('shop', 'start', 'worker');
    assert.equal((await inspect(d, worker)).State.Running, true);
    await assert.rejects(runtime.control('shop', 'restart', 'db'), { code: 'FLT_NOT_FOUND' });
    const address = await runtime.tunnelAddress('shop', 'web', 8080);
    assert.equal(await getBody(address.port, address.host), 'v1');

    // The foreign container was never touched.
    const foreignAfter = await inspect(d, 'foreign');
    assert.equal(foreignAfter.Id, foreign.Id);
    assert.equal(foreignAfter.State.StartedAt, foreign.State.StartedAt);
    assert.equal(foreignAfter.State.Running, true);

    // dockerd stopped: a clear error, an update changes nothing and is retried; it recovers by itself.
    await d.stop();
    await assert.rejects(runtime.services('shop'), (e: unknown) => {
      assert.ok(e instanceof FlotillaError);
      assert.equal(e.code, 'FLT_ENGINE_UNAVAILABLE');
      assert.match(e.message, /does not answer/);
      return true;
    });
    const v4 = await release('4', shopConfig({ imageId, port, message: 'v4', worker: 'c' }));
    h.assign([v4]);
    assert.equal(await h.converge(), false);
    const failed = h.reports.at(-1);
    assert.equal(failed?.phase, 'failed');
    assert.equal(failed?.error?.code, 'FLT_ENGINE_UNAVAILABLE');
    assert.equal(h.engine.records.installed('shop').current?.root, v2.root);
    assert.notEqual(
      h.engine.records.installed('shop').held?.root,
      v4.root,
      'an engine outage holds no release',
    );
    // An agent that starts while the engine is down adopts the app as soon as it answers again.
    const restarted = new DockerRuntime({ logger: quietLogger(), dataDir: h.dataDir, host: d.host });
    t.after(() => restarted.close());
    const current = h.engine.records.installed('shop').current;
    assert.ok(current);
    await assert.rejects(restarted.adopt(h.engine.layout.context(current)), {
      code: 'FLT_ENGINE_UNAVAILABLE',
    });
    await d.start();
    assert.equal(await until('the adopted app to answer', () => getBody(port)), 'v1');
    await until('the adopted worker to run', async () =>
      (await inspect(d, worker)).State.Running ? true : null,
    );
    // And the update that failed goes through now.
    assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
    assert.equal(await getBody(port), 'v4');
    assert.deepEqual(await ours(d, owner), [web, worker]);
    assert.equal((await d.docker(['exec', worker, 'cat', '/data/keep'])).trim(), 'kept');
    assert.equal((await inspect(d, 'foreign')).Id, foreign.Id);
    await d.docker(['rm', '-f', 'foreign']);
  },
);
