/**
 * A started container's address is in the host's neighbour table at once (docs/containers.md, "A
 * client connecting while a container starts"): on an engine before Docker 28, a connection to
 * a published port made while the container starts would otherwise wait for the host's next ARP
 * probe, 1 s later. Against a real dockerd: after the deploy and after an update, the host holds
 * each new container's MAC for its address on the app's bridge, with no traffic having asked for
 * it; a failing `ip` (not root, no iproute2) is logged once and the container runs regardless.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { dockerdAvailable } from '@flotilla/testkit';
import Docker from 'dockerode';
import pino from 'pino';
import { NeighbourAnnouncer, bridgeOf, neighboursOf } from '../../src/runtimes/docker/neighbours.js';
import { buildRelease, writeTree } from '../update/fixtures.js';
import { dockerUpdateHarness } from './docker-harness.js';
import { getBody, webConfig } from './docker-fixtures.js';

const skip = !dockerdAvailable()
  ? 'dockerd or busybox-static is not installed (.ci/run installs them)'
  : process.getuid?.() !== 0
    ? 'writing the host neighbour table needs root'
    : false;

/** The container's one endpoint and the host's neighbour entry for its address on the bridge. */
async function neighbourOf(
  docker: Docker,
  name: string,
): Promise<{ endpoint: Docker.NetworkInfo; entry: string }> {
  const info = await docker.getContainer(name).inspect();
  const endpoint = Object.values(info.NetworkSettings.Networks)[0];
  assert.ok(endpoint !== undefined, 'the container is on a network');
  const bridge = bridgeOf(await docker.getNetwork(endpoint.NetworkID).inspect());
  assert.ok(bridge !== null);
  const { stdout } = await promisify(execFile)('ip', [
    '-4',
    'neigh',
    'show',
    endpoint.IPAddress,
    'dev',
    bridge,
  ]);
  return { endpoint, entry: stdout.trim() };
}

void test(
  'a started container is in the host neighbour table, on deploy and on update',
  { skip, timeout: 300_000 },
  async (t) => {
    const { d, imageId, base, store, h, owner } = await dockerUpdateHarness(t, 'bb', 'flt-dkneigh-');
    const docker = new Docker({ socketPath: d.host.slice('unix://'.length) });
    const release = (version: string) =>
      buildRelease(store, writeTree(join(base, `t${version}`), { v: version }), {
        app: 'n',
        version,
        runtime: 'docker',
        config: webConfig(imageId, `v${version}`),
      });
    const name = `fl-${owner}-n-web`;

    for (const version of ['1', '2']) {
      h.assign([await release(version)]);
      assert.equal(await h.converge(), true, JSON.stringify(h.reports.at(-1)));
      // Nothing has sent the container a packet yet: only the agent can have written the entry.
      const { endpoint, entry } = await neighbourOf(docker, name);
      assert.ok(endpoint.MacAddress !== '', 'the container has a MAC address');
      assert.match(
        entry,
        new RegExp(`lladdr ${endpoint.MacAddress}\\b`),
        `v${version}: ${entry || 'no entry'}`,
      );
      assert.doesNotMatch(entry, /INCOMPLETE|FAILED/);
      assert.equal(await getBody(8080, endpoint.IPAddress), `v${version}`);
    }
  },
);

void test(
  'a failing ip command is logged once and changes nothing',
  { skip, timeout: 120_000 },
  async (t) => {
    const { d, imageId } = await dockerUpdateHarness(t, 'bb', 'flt-dkneigh2-');
    const docker = new Docker({ socketPath: d.host.slice('unix://'.length) });
    await d.docker(['network', 'create', 'n2']);
    await d.docker(['run', '-d', '--name', 'other', '--network', 'n2', imageId, 'sleep', '600']);
    const id = (await docker.getContainer('other').inspect()).Id;
    const logged: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    let calls = 0;
    const announcer = new NeighbourAnnouncer(docker, logger, () => {
      calls++;
      return Promise.reject(new Error('RTNETLINK answers: Operation not permitted'));
    });
    await announcer.announce(id);
    await announcer.announce(id);
    assert.equal(calls, 2, 'each start tries again');
    assert.equal(logged.length, 1, 'logged once');
    assert.match(logged[0] ?? '', /Operation not permitted/);
    assert.equal((await docker.getContainer(id).inspect()).State.Running, true);
    // A container that does not exist (removed meanwhile): no throw either.
    await announcer.announce('0'.repeat(64));
  },
);

void test('bridgeOf: the named bridge, br-<id12>, or none for other drivers', () => {
  const id = 'a'.repeat(12) + 'b'.repeat(52);
  assert.equal(bridgeOf({ Id: id, Driver: 'bridge', Options: {} }), `br-${'a'.repeat(12)}`);
  assert.equal(
    bridgeOf({ Id: id, Driver: 'bridge', Options: { 'com.docker.network.bridge.name': 'docker0' } }),
    'docker0',
  );
  assert.equal(bridgeOf({ Id: id, Driver: 'macvlan', Options: {} }), null);
  assert.equal(bridgeOf({ Id: id, Driver: 'host' }), null);
});

void test('neighboursOf: plain addresses, MACs and interface names only (they become ip arguments)', () => {
  const bridges = new Map<string, string | null>([
    ['n1', 'br-aaaaaaaaaaaa'],
    ['n2', '-force'],
    ['n3', null],
  ]);
  const endpoint = (NetworkID: string, IPAddress: string, MacAddress: string, GlobalIPv6Address = '') =>
    ({ NetworkID, IPAddress, MacAddress, GlobalIPv6Address }) as unknown as Docker.NetworkInfo;
  const info = (...endpoints: Docker.NetworkInfo[]) =>
    ({
      NetworkSettings: { Networks: Object.fromEntries(endpoints.map((e, i) => [`net${i}`, e])) },
    }) as unknown as Docker.ContainerInspectInfo;
  assert.deepEqual(
    neighboursOf(info(endpoint('n1', '172.18.0.2', '02:42:ac:12:00:02', 'fd00::2')), bridges),
    [
      { family: 4, address: '172.18.0.2', mac: '02:42:ac:12:00:02', bridge: 'br-aaaaaaaaaaaa' },
      { family: 6, address: 'fd00::2', mac: '02:42:ac:12:00:02', bridge: 'br-aaaaaaaaaaaa' },
    ],
  );
  assert.deepEqual(
    neighboursOf(
      info(
        endpoint('n1', '-f', '02:42:ac:12:00:02'),
        endpoint('n1', '172.18.0.3', 'lladdr'),
        endpoint('n1', '', ''),
        endpoint('n2', '172.18.0.4', '02:42:ac:12:00:04'),
        endpoint('n3', '172.18.0.5', '02:42:ac:12:00:05'),
        endpoint('unknown', '172.18.0.6', '02:42:ac:12:00:06'),
      ),
      bridges,
    ),
    [],
  );
});
