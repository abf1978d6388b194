/**
 * A private dockerd leaves no bridge behind when it stops: the bridge interface of a user-defined
 * network outlives the daemon (its data root is removed, the interface stays in the host's
 * namespace), and with the default address pools used up (31 such leftovers) every later daemon
 * fails to create a network ("could not find an available, non-overlapping IPv4 address pool").
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { containerToolsInstalled, startPrivateDockerd } from '../src/containers.js';

void test(
  'a private dockerd removes its networks when it stops',
  { skip: !containerToolsInstalled().dockerd && 'dockerd not installed' },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flt-testkit-dockerd-'));
    try {
      const d = await startPrivateDockerd(join(dir, 'd'));
      let bridge: string;
      try {
        const id = (await d.docker(['network', 'create', 'left-behind'])).trim();
        bridge = `/sys/class/net/br-${id.slice(0, 12)}`;
        assert.ok(existsSync(bridge), `${bridge} while the daemon runs`);
      } finally {
        await d.stop();
      }
      assert.ok(!existsSync(bridge), `${bridge} is gone after the daemon stopped`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
