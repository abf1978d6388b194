/**
 * The per-service update strategy against a real dockerd: `start-stop` starts the new container
 * and stops the old one only once the new one is healthy (a new one that never is leaves the old
 * one running, untouched, and the update rolls back); `stop-start` (default) stops first.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DockerRuntimeConfig } from '@flotilla/protocol';
import { dockerdAvailable } from '@flotilla/testkit';
import { buildRelease, writeTree } from '../update/fixtures.js';
import { dockerUpdateHarness } from './docker-harness.js';

const skip = dockerdAvailable()
  ? false
  : 'dockerd or busybox-static is not installed (.ci/run installs them)';

/** Two workers writing `start X` / `stop X` to the shared volume; `a` updates start-first. */
function config(imageId: string, version: string, healthy = true): DockerRuntimeConfig {
  const worker = (name: string) => ({
    image: 'bb',
    command: [
      'sh',
      '-c',
      `trap 'echo stop ${name}$V >> /data/events; exit 0' TERM; echo start ${name}$V >> /data/events; while true; do sleep 0.2; done`,
    ],
    environment: { V: version },
    volumes: [{ type: 'volume' as const, source: 'events', target: '/data' }],
    healthcheck: { test: healthy ? ['CMD', 'true'] : ['CMD', 'false'], interval_ms: 200, retries: 2 },
  });
  return {
    docker: {
      compose: { services: { a: worker('a'), b: worker('b') }, volumes: ['events'] },
      images: { bb: imageId },
      strategy: { a: 'start-stop' },
      health: { windowMs: 500, timeoutMs: 15_000 },
      stopTimeoutS: 5,
    },
  };
}

void test(
  'update strategies: start-then-stop with health gating, stop-then-start',
  { skip, timeout: 300_000 },
  async (t) => {
    const { d, imageId, base, store, h, owner } = await dockerUpdateHarness(t, 'bb', 'flt-dkstrat-');
    const release = (version: string, c: DockerRuntimeConfig) =>
      buildRelease(store, writeTree(join(base, `t${version}`), { v: version }), {
        app: 'w',
        version,
        runtime: 'docker',
        config: c,
      });
    const events = async () =>
      (await d.docker(['exec', `fl-${owner}-w-b`, 'cat', '/data/events'])).trim().split('\n');
    const inspect = async (name: string) =>
      (
        JSON.parse(await d.docker(['inspect', name])) as {
          Id: string;
          State: { Running: boolean; StartedAt: string };
        }[]
      )[0]!;

    const v1 = await release('1', config(imageId, '1'));
    h.assign([v1]);
    assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
    assert.deepEqual((await events()).sort(), ['start a1', 'start b1']);

    const v2 = await release('2', config(imageId, '2'));
    h.assign([v2]);
    assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
    const log = (await events()).slice(2);
    // a (start-stop): the new one started before the old one stopped; b (stop-start): the other way.
    assert.ok(log.indexOf('start a2') < log.indexOf('stop a1'), JSON.stringify(log));
    assert.ok(log.indexOf('stop b1') < log.indexOf('start b2'), JSON.stringify(log));

    // v3's `a` never becomes healthy: the old `a` is never stopped, and the update rolls back.
    const aBefore = await inspect(`fl-${owner}-w-a`);
    const v3 = await release('3', {
      ...config(imageId, '3'),
      docker: {
        ...config(imageId, '3').docker,
        compose: {
          ...config(imageId, '3', false).docker.compose,
          services: {
            a: config(imageId, '3', false).docker.compose.services.a!,
            b: config(imageId, '2').docker.compose.services.b!,
          },
        },
      },
    });
    h.assign([v3]);
    await h.converge();
    const rolled = h.reports.find((r) => r.phase === 'rolled-back');
    assert.equal(rolled?.error?.code, 'FLT_HEALTH_CHECK_FAILED', JSON.stringify(h.reports.slice(-3)));
    assert.equal(h.engine.records.installed('w').current?.root, v2.root);
    const aAfter = await inspect(`fl-${owner}-w-a`);
    assert.equal(aAfter.Id, aBefore.Id);
    assert.equal(aAfter.State.StartedAt, aBefore.State.StartedAt, 'the old container was never stopped');
    assert.ok(!(await events()).includes('stop a2'));
    const names = (
      await d.docker(['ps', '-a', '--filter', `label=io.flotilla.owner=${owner}`, '--format', '{{.Names}}'])
    )
      .split('\n')
      .filter(Boolean)
      .sort();
    assert.deepEqual(names, [`fl-${owner}-w-a`, `fl-${owner}-w-b`]);
  },
);
