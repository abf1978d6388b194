/**
 * The order of a stop-then-start replacement against a real dockerd: the new container is created
 * (under its parked name) before the old one is parked, so only the renames and the start lie
 * between the old container's end and the new one's; a new container that cannot start leaves
 * the old one restorable, and the rollback runs that very container again (same id).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DockerRuntimeConfig } from '@flotilla/protocol';
import { dockerdAvailable } from '@flotilla/testkit';
import { buildRelease, writeTree } from '../update/fixtures.js';
import { getBody, webConfig } from './docker-fixtures.js';
import { dockerUpdateHarness } from './docker-harness.js';

const skip = dockerdAvailable()
  ? false
  : 'dockerd or busybox-static is not installed (.ci/run installs them)';

void test(
  'stop-then-start creates the new container before parking the old one; a failed start rolls back to the old container',
  { skip, timeout: 300_000 },
  async (t) => {
    const { d, imageId, base, store, h, owner } = await dockerUpdateHarness(t, 'bb', 'flt-dkorder-');
    const name = `fl-${owner}-o-web`;
    const release = (version: string, c: DockerRuntimeConfig) =>
      buildRelease(store, writeTree(join(base, `t${version}`), { v: version }), {
        app: 'o',
        version,
        runtime: 'docker',
        config: c,
      });
    const inspect = async (ref: string) =>
      (
        JSON.parse(await d.docker(['inspect', ref])) as {
          Id: string;
          Name: string;
          State: { Running: boolean; StartedAt: string };
        }[]
      )[0]!;
    const ours = async () =>
      (await d.docker(['ps', '-a', '--filter', `label=io.flotilla.owner=${owner}`, '--format', '{{.Names}}']))
        .split('\n')
        .filter(Boolean)
        .sort();
    /** What the service's container serves, at its address on the app network. */
    const page = async () => {
      const ip = (
        await d.docker([
          'inspect',
          '--format',
          '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
          name,
        ])
      ).trim();
      return getBody(8080, ip);
    };
    /** The engine's container events since `since` (unix seconds): `<action> <id>`, in order. */
    const events = async (since: number) =>
      (
        await d.docker([
          'events',
          '--since',
          String(since),
          '--until',
          String(Math.ceil(Date.now() / 1000) + 1),
          '--filter',
          'type=container',
          '--format',
          '{{.Action}} {{.Actor.ID}}',
        ])
      )
        .split('\n')
        .filter(Boolean);

    const v1 = await release('1', webConfig(imageId, 'one'));
    h.assign([v1]);
    assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
    assert.equal(await page(), 'one');
    const old = await inspect(name);

    // v2: the new container is created before the old one is parked (renamed).
    const since = Math.floor(Date.now() / 1000) - 1;
    const v2 = await release('2', webConfig(imageId, 'two'));
    h.assign([v2]);
    assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
    assert.equal(await page(), 'two');
    const fresh = await inspect(name);
    assert.notEqual(fresh.Id, old.Id);
    const log = await events(since);
    const created = log.indexOf(`create ${fresh.Id}`);
    const parked = log.findIndex((e) => e.startsWith('rename ') && e.endsWith(old.Id));
    assert.ok(created >= 0 && parked >= 0, JSON.stringify(log));
    assert.ok(
      created < parked,
      `the new container was created after the old one was parked: ${JSON.stringify(log)}`,
    );
    assert.deepEqual(await ours(), [name], 'the parked container is removed once the update commits');

    // v3's container is created but cannot start (no such executable): the start step fails, and
    // the rollback runs the v2 container itself again.
    const v3 = await release('3', webConfig(imageId, 'three', ['/no/such/program']));
    h.assign([v3]);
    await h.converge();
    const rolled = h.reports.find((r) => r.phase === 'rolled-back');
    assert.ok(rolled, JSON.stringify(h.reports.slice(-3)));
    assert.equal(rolled.error?.code, 'FLT_RUNTIME_FAILED', JSON.stringify(rolled));
    assert.equal(h.engine.records.installed('o').current?.root, v2.root);
    const after = await inspect(name);
    assert.equal(after.Id, fresh.Id, 'the old container itself serves again');
    assert.ok(after.State.Running);
    assert.equal(await page(), 'two');
    assert.deepEqual(await ours(), [name], 'no stray containers after the rollback');
  },
);
