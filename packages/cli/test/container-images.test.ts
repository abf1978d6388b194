/**
 * Image delivery through the chunk store with a real dockerd and Debian's docker-registry: images
 * staged from the engine, a `docker save` archive, an OCI layout and a registry land in the release
 * tree with the engine's image id; the tree goes through the store (build, materialize) and the
 * agent's ReleaseTreeImageProvider loads it back (after `docker rmi`) with the same id. A layer
 * changed in the tree is refused (FLT_HASH_MISMATCH), an image the tree lacks is FLT_IMAGE_MISSING.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { ReleaseTreeImageProvider } from '@flotilla/agent';
import { isFlotillaError } from '@flotilla/protocol';
import { buildTree, materialize, MemoryStore } from '@flotilla/store';
import {
  containerToolsInstalled,
  importLayeredBusyboxImage,
  startLocalRegistry,
  startPrivateDockerd,
} from '@flotilla/testkit';
import { IMAGES_DIR, readImagesIndex, stageImages } from '../src/push/container-images.js';

const run = promisify(execFile);
const tools = containerToolsInstalled();
const skip =
  !tools.dockerd || !tools.registry ? 'needs dockerd and docker-registry (.ci/run installs them)' : false;

function context(releaseDir: string): Parameters<ReleaseTreeImageProvider['ensure']>[1] {
  return {
    app: 'shop',
    release: {} as never,
    appDir: releaseDir,
    releaseDir,
    currentLink: join(releaseDir, 'current'),
    dataDir: join(releaseDir, 'data'),
    logDir: join(releaseDir, 'logs'),
  };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (error: unknown) => {
    assert.ok(isFlotillaError(error), String(error));
    assert.equal(error.code, code, error.message);
    return true;
  });
}

void test(
  'images staged from engine, archive, OCI layout and registry load back with the same id',
  { skip, timeout: 600_000 },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'flt-images-'));
    const dockerd = await startPrivateDockerd(join(dir, 'dockerd'));
    const registry = await startLocalRegistry(join(dir, 'registry'));
    // One hook, in order: the daemons stop before their directories go.
    t.after(async () => {
      await dockerd.stop();
      await registry.stop();
      await rm(dir, { recursive: true, force: true });
    });
    const docker = new Docker({ socketPath: dockerd.socketPath });
    const signal = new AbortController().signal;
    const logged: string[] = [];
    const provider = new ReleaseTreeImageProvider((message) => logged.push(message));

    const ref = 'flotilla-test/app:v1';
    const id = await importLayeredBusyboxImage(dockerd, dir, ref, {
      'hello.txt': 'hello v1\n',
      'data.bin': Buffer.alloc(300_000, 7),
    });
    const otherRef = 'flotilla-test/other:v1';
    const otherId = await importLayeredBusyboxImage(dockerd, dir, otherRef, { 'other.txt': 'other\n' });

    /** Stages, pushes through the store, materializes, removes the images and loads them back. */
    async function roundTrip(
      name: string,
      refs: string[],
      source: Parameters<typeof stageImages>[1],
    ): Promise<string> {
      const tree = join(dir, `tree-${name}`);
      await run('mkdir', ['-p', tree]);
      await writeFile(join(tree, 'docker-compose.yml'), 'services: {}\n');
      const ids = await stageImages(refs, source, tree);
      const store = new MemoryStore();
      const built = await buildTree(tree, { sink: store });
      const releaseDir = join(dir, `release-${name}`);
      await materialize(store, built.root, releaseDir);
      for (const r of Object.keys(ids)) await dockerd.docker(['rmi', '-f', r]).catch(() => '');
      await dockerd.docker(['image', 'prune', '-f']);
      await provider.ensure(docker, context(releaseDir), ids, signal);
      for (const [r, want] of Object.entries(ids)) {
        const got = (await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', r])).trim();
        assert.equal(got, want, `${name}: ${r} loads with the id that was staged`);
      }
      // Loading again finds the image and only tags it.
      await provider.ensure(docker, context(releaseDir), ids, signal);
      // The busybox base layer is still on the engine (flotilla-test/busybox:base): the image was
      // delivered without a retry or a fallback to sending every layer.
      assert.ok(logged.includes('image loaded from the release tree'));
      assert.ok(!logged.some((m) => m.includes('sending every layer')), logged.join('; '));
      return releaseDir;
    }

    await t.test('from the engine (two images sharing the busybox layer)', async (s) => {
      const tree = join(dir, 'tree-shared');
      await run('mkdir', ['-p', tree]);
      const ids = await stageImages([ref, otherRef], { from: 'engine', docker }, tree);
      assert.deepEqual(ids, { [ref]: id, [otherRef]: otherId });
      const index = await readImagesIndex(tree);
      assert.ok(index);
      const dirs = Object.values(index.images).map((e) => e.dir);
      assert.equal(new Set(dirs).size, 2);
      const names = await readdir(join(tree, IMAGES_DIR, dirs[0]!));
      assert.deepEqual(names.sort(), ['config.json', 'layer-000.tar', 'layer-001.tar', 'manifest.json']);
      // The shared busybox layer is the same file content in both: the store holds its chunks once.
      const a = await readFile(join(tree, IMAGES_DIR, dirs[0]!, 'layer-000.tar'));
      const b = await readFile(join(tree, IMAGES_DIR, dirs[1]!, 'layer-000.tar'));
      assert.ok(a.equals(b));
      const releaseDir = await roundTrip('engine', [ref], { from: 'engine', docker });

      await s.test(
        'prepare loads from a staged tree renamed meanwhile; ensure waits, loads nothing more',
        async () => {
          await dockerd.docker(['rmi', '-f', ref]);
          const staged = `${releaseDir}.tmp`;
          await rename(releaseDir, staged);
          const before = logged.length;
          // As the stage step does: prepare on the staged tree, then the rename into place.
          await provider.prepare(docker, context(staged), { [ref]: id }, signal);
          await rename(staged, releaseDir);
          await provider.ensure(docker, context(releaseDir), { [ref]: id }, signal);
          const got = (await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
          assert.equal(got, id);
          // Loaded with docker load (the default delivery), once.
          assert.deepEqual(logged.slice(before), ['image loaded ahead of the start step']);
        },
      );

      await s.test('a layer changed in the tree is refused and nothing is tagged', async () => {
        const index2 = await readImagesIndex(releaseDir);
        const layer = join(releaseDir, IMAGES_DIR, index2!.images[ref]!.dir, 'layer-001.tar');
        const fh = await open(layer, 'r+');
        await fh.write(Buffer.from('X'), 0, 1, 2000);
        await fh.close();
        await dockerd.docker(['rmi', '-f', ref]);
        // A load begun by prepare fails the same way; it is only logged, and ensure refuses too.
        await provider.prepare(docker, context(releaseDir), { [ref]: id }, signal);
        await rejectsWith(
          provider.ensure(docker, context(releaseDir), { [ref]: id }, signal),
          'FLT_HASH_MISMATCH',
        );
        assert.ok(
          logged.includes('loading an image ahead of the start step failed; the start step loads it'),
        );
        await assert.rejects(dockerd.docker(['image', 'inspect', id]));
      });

      await s.test('an image the tree lacks is FLT_IMAGE_MISSING', async () => {
        const absent = `sha256:${'0'.repeat(64)}`;
        await rejectsWith(
          provider.ensure(docker, context(releaseDir), { 'nope:1': absent }, signal),
          'FLT_IMAGE_MISSING',
        );
        await rejectsWith(
          provider.ensure(docker, context(join(dir, 'tree-empty')), { [ref]: absent }, signal),
          'FLT_IMAGE_MISSING',
        );
        await rejectsWith(
          stageImages(['flotilla-test/absent:1'], { from: 'engine', docker }, join(dir, 'tree-x')),
          'FLT_IMAGE_MISSING',
        );
      });
    });

    await t.test('from a docker save archive', async (s) => {
      await importLayeredBusyboxImage(dockerd, dir, ref, {
        'hello.txt': 'hello v1\n',
        'data.bin': Buffer.alloc(300_000, 7),
      });
      const archive = join(dir, 'save.tar');
      await dockerd.docker(['save', '-o', archive, ref]);
      await roundTrip('archive', [ref], { from: 'archive', path: archive });
      await rejectsWith(
        stageImages(['flotilla-test/absent:1'], { from: 'archive', path: archive }, join(dir, 'tree-y')),
        'FLT_IMAGE_MISSING',
      );

      await s.test('from an OCI layout (gzip layers, written by skopeo)', async () => {
        const layout = join(dir, 'layout');
        await run('skopeo', ['copy', '--quiet', `docker-archive:${archive}`, `oci:${layout}:v1`], {
          env: { ...process.env, HOME: dir },
        });
        await roundTrip('oci', [ref], { from: 'oci', path: layout });
        // skopeo writes its own config (an OCI one), so the id is the layout's, not the engine's.
        const byTag = await stageImages(['v1'], { from: 'oci', path: layout }, join(dir, 'tree-oci-tag'));
        const byRef = await stageImages([ref], { from: 'oci', path: layout }, join(dir, 'tree-oci-ref'));
        assert.equal(byTag.v1, byRef[ref]);
      });
    });

    await t.test('from a registry over the distribution API', async () => {
      await importLayeredBusyboxImage(dockerd, dir, ref, {
        'hello.txt': 'hello v1\n',
        'data.bin': Buffer.alloc(300_000, 7),
      });
      const remote = `${registry.host}/flotilla-test/app:v1`;
      await dockerd.docker(['tag', ref, remote]);
      await dockerd.docker(['push', remote]);
      await roundTrip('registry', [remote], { from: 'registry' });
    });
  },
);
