/**
 * The setup the docker update tests share: a private dockerd (DOCKER_HOST pointed at it, so the
 * agent's runtime finds it), busybox imported as `image`, a server store and the update engine's
 * harness on a fresh data directory.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { importBusyboxImage, startTestDockerd, tempDir } from '@flotilla/testkit';
import { ownerId } from '../../src/runtimes/docker/engine.js';
import { harness } from '../update/engine-harness.js';
import { serverStore } from '../update/fixtures.js';

export async function dockerUpdateHarness(t: TestContext, image: string, prefix: string) {
  const d = await startTestDockerd(mkdtempSync(join(tmpdir(), 'flt-dockerd-')));
  t.after(() => d.destroy());
  process.env.DOCKER_HOST = d.host;
  const imageId = await importBusyboxImage(d, image);
  const base = tempDir(t, prefix);
  const store = await serverStore(t);
  const h = await harness(t, store, { dataDir: join(base, 'data') });
  return { d, imageId, base, store, h, owner: ownerId(h.dataDir) };
}
