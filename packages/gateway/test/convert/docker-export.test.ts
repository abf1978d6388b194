import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MemoryStore } from '@flotilla/store';
import { convertImage, pullImage } from '../../src/index.js';
import { dockerdInstalled, scanTar, startDockerd } from '../helpers/docker.js';
import type { Dockerd } from '../helpers/docker.js';
import { busyboxImage } from '../helpers/image.js';
import { pushLayout, writeOciLayout } from '../helpers/oci.js';
import { normalized, scanDir } from '../helpers/scan.js';
import type { Seen } from '../helpers/scan.js';
import { run, startRegistry } from '../helpers/services.js';
import type { Registry } from '../helpers/services.js';

/** What `docker create` adds to every container (its init layer), absent from the image. */
const DOCKER_INIT = [
  '/.dockerenv',
  '/dev',
  '/proc',
  '/sys',
  '/etc/hostname',
  '/etc/hosts',
  '/etc/resolv.conf',
  '/etc/mtab',
];
const fromDockerInit = (path: string): boolean =>
  DOCKER_INIT.some((p) => path === p || path.startsWith(`${p}/`));

void describe(
  'pull + convert matches docker export of the same image',
  { skip: dockerdInstalled() ? false : 'dockerd is not installed (Debian docker.io; .ci/run installs it)' },
  () => {
    let dir: string;
    let registry: Registry;
    let dockerd: Dockerd;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'flt-gw-docker-'));
      registry = await startRegistry(join(dir, 'registry'), { mode: 'none' });
      dockerd = await startDockerd(join(dir, 'dockerd'));
    });

    after(async () => {
      await dockerd?.stop();
      await registry?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    void it('squashfs unpacked with unsquashfs has the files, modes, owners, link targets and contents of docker export', async () => {
      const { layers, expected } = await busyboxImage(join(dir, 'build'), 'v1', false);
      await writeOciLayout(join(dir, 'layout'), 'v1', [{ architecture: 'amd64', layers }]);
      await pushLayout(join(dir, 'layout'), 'v1', registry.host, 'images/busybox');

      const pulled = await pullImage('images/busybox:v1', {
        location: { url: registry.url, auth: { type: 'none' } },
        cacheDir: join(dir, 'cache'),
      });
      const converted = await convertImage(pulled.layers, {
        outDir: join(dir, 'out'),
        sink: new MemoryStore(),
      });
      await run('unsquashfs', ['-no-progress', '-d', join(dir, 'unpacked'), converted.squashfsPath]);
      const ours = await scanDir(join(dir, 'unpacked'), true);

      const ref = `${registry.host}/images/busybox:v1`;
      await dockerd.docker(['pull', '--quiet', ref]);
      const id = (await dockerd.docker(['create', ref])).trim();
      const exported = await scanTar(await dockerd.exportContainer(id));
      await dockerd.docker(['rm', id]);
      const theirs = new Map<string, Seen>(
        [...exported].filter(([path]) => !fromDockerInit(path) || expected.has(path)),
      );

      // docker export writes only the security.capability xattr (moby pkg/archive), so xattrs are
      // compared with the expected tree only.
      const withoutXattrs = new Map([...ours].map(([p, { xattrs: _x, ...rest }]) => [p, rest]));
      assert.deepEqual(normalized(withoutXattrs), normalized(theirs));
      assert.deepEqual(normalized(ours), normalized(expected));
    });
  },
);
