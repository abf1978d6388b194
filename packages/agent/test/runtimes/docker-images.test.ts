/**
 * Image delivery from a release tree to a real, private dockerd (docs/containers.md "Image
 * delivery"): the engine pulls the image from the agent's loopback registry and holds exactly the
 * pushed id with the ref's tag and no 127.0.0.1 reference; an update fetches only the changed layer;
 * a tampered layer is FLT_HASH_MISMATCH and leaves no image; a registry answer the engine refuses
 * falls back to `docker load`; a layer source failing mid-pull fails only that delivery; the `load` delivery never pulls,
 * refuses a tampered layer the same way, gives each layer piece back once written out, and a pull over a
 * loaded image is still exact.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import * as tar from 'tar-stream';
import { isFlotillaError } from '@flotilla/protocol';
import { dockerdAvailable, startTestDockerd, tempDir } from '@flotilla/testkit';
import { waitFor } from '../helpers/agent.js';
import type { TestDockerd } from '@flotilla/testkit';
import {
  IMAGES_DIR,
  ReleaseTreeImageProvider,
  dirFiles,
  imageDeliveryFromEnv,
} from '../../src/runtimes/docker/release-images.js';
import type { ReleaseTreeImageOptions } from '../../src/runtimes/docker/release-images.js';
import type { AppContext, TreeFiles } from '../../src/runtimes/runtime.js';

const skip = dockerdAvailable()
  ? false
  : 'dockerd or busybox-static is not installed (.ci/run installs them)';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An uncompressed layer tar holding `files` (path → content), deterministic. */
async function layerTar(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  pack.on('data', (c: unknown) => parts.push(c as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const [name, content] of Object.entries(files)) {
    pack.entry({ name, mode: 0o644, mtime: new Date(1_700_000_000_000), uid: 0, gid: 0 }, content);
  }
  pack.finalize();
  await done;
  return Buffer.concat(parts);
}

/** Writes a release tree with one image of `layers`; returns its directory and the image id. */
async function tree(dir: string, ref: string, layers: Buffer[]): Promise<{ dir: string; id: string }> {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map(sha) },
      history: layers.map(() => ({ created: '2026-12-06T00:00:00Z', created_by: 'test' })),
    }),
  );
  const id = sha(config);
  const imageDir = join(dir, IMAGES_DIR, 'img');
  await mkdir(imageDir, { recursive: true });
  await writeFile(
    join(dir, IMAGES_DIR, 'images.json'),
    JSON.stringify({ schemaVersion: 1, images: { [ref]: { id, dir: 'img' } } }),
  );
  await writeFile(join(imageDir, 'config.json'), config);
  const entries = [];
  for (const [i, l] of layers.entries()) {
    const file = `layer-${String(i).padStart(3, '0')}.tar`;
    await writeFile(join(imageDir, file), l);
    entries.push({ file, diffId: sha(l), size: l.length });
  }
  await writeFile(join(imageDir, 'manifest.json'), JSON.stringify({ schemaVersion: 1, id, layers: entries }));
  return { dir, id };
}

function ctx(releaseDir: string): AppContext {
  return { app: 'shop', releaseDir } as AppContext;
}

interface Logged {
  message: string;
  fields: Record<string, unknown>;
}

function provider(options: ReleaseTreeImageOptions = {}): { p: ReleaseTreeImageProvider; logs: Logged[] } {
  const logs: Logged[] = [];
  const p = new ReleaseTreeImageProvider(
    (message, fields) => logs.push({ message, fields: fields ?? {} }),
    options,
  );
  return { p, logs };
}

interface ImageInfo {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
}

void describe('image delivery to a real dockerd', { skip }, () => {
  let d: TestDockerd;
  let docker: Docker;
  let base: string;
  const signal = new AbortController().signal;

  before(async () => {
    d = await startTestDockerd(mkdtempSync(join(tmpdir(), 'flt-dockerd-')));
    docker = new Docker({ socketPath: d.socket });
  });
  after(async () => {
    await d?.destroy();
  });

  async function image(id: string): Promise<ImageInfo | null> {
    try {
      return await docker.getImage(id).inspect();
    } catch {
      return null;
    }
  }

  /** The engine's `docker-untar` children (a `docker load` that has its archive's first bytes). */
  async function untarChildren(): Promise<number[]> {
    const found: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const argv0 = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0')[0];
        if (ppid === d.pid() && argv0 === 'docker-untar') found.push(Number(entry));
      } catch {
        // the process ended meanwhile
      }
    }
    return found;
  }

  async function loopbackRefs(): Promise<string[]> {
    const all = (await docker.listImages({ all: true })) as { RepoTags?: string[]; RepoDigests?: string[] }[];
    return all
      .flatMap((i) => [...(i.RepoTags ?? []), ...(i.RepoDigests ?? [])])
      .filter((r) => r.startsWith('127.'));
  }

  void test('pulled from the loopback registry: the pushed id, the ref tag, no 127.0.0.1 reference; an update fetches only the changed layer', async (t) => {
    base = tempDir(t, 'flt-img-');
    const baseLayer = await layerTar({ 'etc/base.txt': 'base\n'.repeat(1000) });
    const v1 = await tree(join(base, 'v1'), 'shop/pull:1', [baseLayer, await layerTar({ 'app/v': 'one\n' })]);
    const { p, logs } = provider({ delivery: 'pull' });
    await p.ensure(docker, ctx(v1.dir), { 'shop/pull:1': v1.id }, signal);
    const got = await image(v1.id);
    assert.equal(got?.Id, v1.id);
    assert.deepEqual(got?.RepoTags, ['shop/pull:1']);
    assert.deepEqual(await loopbackRefs(), []);
    const pulled = logs.find((l) => l.message.includes('loopback registry'));
    assert.equal(pulled?.message, "image pulled from the agent's loopback registry", JSON.stringify(logs));
    assert.equal(pulled?.fields.blobs, 3, 'config and both layers');

    const v2 = await tree(join(base, 'v2'), 'shop/pull:2', [baseLayer, await layerTar({ 'app/v': 'two\n' })]);
    await p.ensure(docker, ctx(v2.dir), { 'shop/pull:2': v2.id }, signal);
    assert.equal((await image(v2.id))?.Id, v2.id);
    assert.deepEqual((await image(v2.id))?.RepoTags, ['shop/pull:2']);
    const second = logs.filter((l) => l.message === "image pulled from the agent's loopback registry")[1];
    assert.equal(second?.fields.blobs, 2, 'the config and the changed layer only');
    assert.deepEqual(await loopbackRefs(), []);
    assert.ok(!logs.some((l) => l.message.includes('docker load')), JSON.stringify(logs));
  });

  void test('a tampered layer is FLT_HASH_MISMATCH and the engine holds no such image', async (t) => {
    const dir = tempDir(t, 'flt-img-');
    const v = await tree(join(dir, 't'), 'shop/bad:1', [await layerTar({ 'app/x': 'good content\n' })]);
    const path = join(v.dir, IMAGES_DIR, 'img', 'layer-000.tar');
    const bytes = await readFile(path);
    bytes.write('bad!', 512); // the file's content, same size
    await writeFile(path, bytes);
    const { p, logs } = provider({ delivery: 'pull' });
    await assert.rejects(
      p.ensure(docker, ctx(v.dir), { 'shop/bad:1': v.id }, signal),
      (e: unknown) =>
        isFlotillaError(e) &&
        e.code === 'FLT_HASH_MISMATCH' &&
        (e.details as { path?: string }).path === `${IMAGES_DIR}/img/layer-000.tar`,
    );
    assert.equal(await image(v.id), null);
    assert.equal(await image('shop/bad:1'), null);
    assert.deepEqual(await loopbackRefs(), []);
    assert.ok(!logs.some((l) => l.message.includes('docker load')), 'no fallback to docker load');
  });

  void test('a registry answer the engine refuses falls back to docker load (logged), with the same id', async (t) => {
    const dir = tempDir(t, 'flt-img-');
    const v = await tree(join(dir, 'f'), 'shop/fallback:1', [await layerTar({ 'app/f': 'fallback\n' })]);
    const { p, logs } = provider({
      delivery: 'pull',
      registryAnswer: (path) =>
        path.includes('/manifests/')
          ? { status: 200, type: 'text/plain', body: 'not a manifest' }
          : undefined,
    });
    await p.ensure(docker, ctx(v.dir), { 'shop/fallback:1': v.id }, signal);
    assert.equal((await image(v.id))?.Id, v.id);
    assert.deepEqual((await image(v.id))?.RepoTags, ['shop/fallback:1']);
    assert.ok(
      logs.some((l) => l.message.startsWith('the engine could not pull')),
      JSON.stringify(logs),
    );
    assert.ok(logs.some((l) => l.message === 'image loaded from the release tree'));
    assert.deepEqual(await loopbackRefs(), []);
  });

  void test('a layer source that fails during the pull (a fetch failing) fails that delivery only: no fallback, the next one pulls', async (t) => {
    const dir = tempDir(t, 'flt-img-');
    const v = await tree(join(dir, 's'), 'shop/source:1', [await layerTar({ 'app/s': 'x'.repeat(300_000) })]);
    const disk = dirFiles(v.dir);
    const failing: TreeFiles = {
      read: (path) => disk.read(path),
      open: async (path) => {
        const file = await disk.open(path);
        if (file === null) return null;
        return {
          size: file.size,
          close: () => file.close(),
          pieces: async function* () {
            yield new Uint8Array(1024);
            await new Promise((r) => setTimeout(r, 10));
            throw new Error('the fetch failed: connection reset');
          },
        };
      },
    };
    const { p, logs } = provider({ delivery: 'pull' });
    await p.prepare(docker, { ...ctx(v.dir), files: failing }, { 'shop/source:1': v.id }, signal);
    await p.ensure(docker, ctx(v.dir), { 'shop/source:1': v.id }, signal);
    const ahead = logs.find((l) => l.message.startsWith('loading an image ahead of the start step failed'));
    assert.match(String(ahead?.fields.error), /connection reset/, JSON.stringify(logs));
    assert.ok(!logs.some((l) => l.message.startsWith('the engine could not pull')), JSON.stringify(logs));
    assert.ok(logs.some((l) => l.message === "image pulled from the agent's loopback registry"));
    assert.equal((await image(v.id))?.Id, v.id);
    assert.deepEqual(await loopbackRefs(), []);
  });

  void test('delivery "load": a tampered layer is FLT_HASH_MISMATCH and the engine holds no such image', async (t) => {
    const dir = tempDir(t, 'flt-img-');
    const v = await tree(join(dir, 'lt'), 'shop/badload:1', [await layerTar({ 'app/y': 'good content\n' })]);
    const path = join(v.dir, IMAGES_DIR, 'img', 'layer-000.tar');
    const bytes = await readFile(path);
    bytes.write('bad!', 512);
    await writeFile(path, bytes);
    const { p } = provider({ delivery: 'load' });
    await assert.rejects(
      p.ensure(docker, ctx(v.dir), { 'shop/badload:1': v.id }, signal),
      (e: unknown) =>
        isFlotillaError(e) &&
        e.code === 'FLT_HASH_MISMATCH' &&
        (e.details as { path?: string }).path === `${IMAGES_DIR}/img/layer-000.tar`,
    );
    assert.equal(await image(v.id), null);
    assert.equal(await image('shop/badload:1'), null);
  });

  void test('delivery "load" ahead of the start step: each piece of the layer is given back once written out, the stage is let go as the layer streams, the id exact', async (t) => {
    const dir = tempDir(t, 'flt-img-');
    const big: Record<string, string> = {};
    for (let i = 0; i < 6; i++) big[`app/part-${i}`] = `${i}`.repeat(1024 * 1024);
    const v = await tree(join(dir, 'lb'), 'shop/bigload:1', [await layerTar(big)]);
    const files = dirFiles(v.dir);
    const recycled: number[] = [];
    const events: string[] = [];
    const counted: TreeFiles = {
      read: (p) => files.read(p),
      open: async (p) => {
        const f = await files.open(p);
        return f && { ...f, recycle: (piece: Uint8Array) => void recycled.push(piece.length) };
      },
      reading: () => {
        events.push('hold');
        let held = true;
        return () => {
          if (held) events.push('let go');
          held = false;
        };
      },
    };
    const logs: Logged[] = [];
    const p = new ReleaseTreeImageProvider(
      (message, fields) => {
        logs.push({ message, fields: fields ?? {} });
        events.push(message);
      },
      { delivery: 'load' },
    );
    const at = { app: 'shop', releaseDir: v.dir, files: counted } as AppContext;
    await p.prepare(docker, at, { 'shop/bigload:1': v.id }, signal);
    await p.ensure(docker, at, { 'shop/bigload:1': v.id }, signal);
    assert.equal((await image(v.id))?.Id, v.id);
    assert.deepEqual((await image(v.id))?.RepoTags, ['shop/bigload:1']);
    const layerSize = (await readFile(join(v.dir, IMAGES_DIR, 'img', 'layer-000.tar'))).length;
    assert.equal(
      recycled.reduce((a, b) => a + b, 0),
      layerSize,
      'every byte of the layer went out in a piece that was given back',
    );
    assert.ok(recycled.length >= 6, `pieces: ${recycled.length}`);
    // Staging's hold ends as the layer begins to stream (its reads are counted from there), not
    // once the engine has loaded it.
    assert.deepEqual(
      events,
      ['hold', 'let go', 'image loaded ahead of the start step'],
      JSON.stringify(logs),
    );
  });

  void test('expect opens the load as the update begins: the load then claims it and the id is exact; one no load claims is cut and loads nothing', async (t) => {
    const dir = tempDir(t, 'flt-img-');
    const v = await tree(join(dir, 'e'), 'shop/expect:1', [await layerTar({ 'app/e': 'early\n' })]);
    const unused = await tree(join(dir, 'u'), 'shop/unused:1', [await layerTar({ 'app/u': 'never\n' })]);
    const { p, logs } = provider();
    await p.expect(docker, { 'shop/expect:1': v.id, 'shop/unused:1': unused.id });
    assert.deepEqual(p.expecting().sort(), [v.id, unused.id].sort());
    // The engine's untar child comes up for each request before any layer is there (its primer).
    await waitFor('two untar children', async () => (await untarChildren()).length === 2);
    await p.ensure(docker, ctx(v.dir), { 'shop/expect:1': v.id }, signal);
    assert.deepEqual(p.expecting(), [unused.id], 'the load took the request opened for it');
    assert.equal((await image(v.id))?.Id, v.id);
    assert.deepEqual((await image(v.id))?.RepoTags, ['shop/expect:1']);
    assert.ok(!logs.some((l) => l.message.includes('loopback')), JSON.stringify(logs));
    // An image already there opens nothing; the unclaimed request is cut when the provider closes.
    await p.expect(docker, { 'shop/expect:1': v.id });
    assert.deepEqual(p.expecting(), [unused.id]);
    p.close();
    assert.deepEqual(p.expecting(), []);
    // The cut request's child ends; the engine loaded nothing from it.
    await waitFor('the untar child to end', async () => (await untarChildren()).length === 0);
    assert.equal(await image(unused.id), null);
    // A later update of the unused image still loads it (no request left half-written).
    await p.ensure(docker, ctx(unused.dir), { 'shop/unused:1': unused.id }, signal);
    assert.equal((await image(unused.id))?.Id, unused.id);
  });

  void test('delivery "load" never pulls; the variable accepts pull or load only', async (t) => {
    const dir = tempDir(t, 'flt-img-');
    const v = await tree(join(dir, 'l'), 'shop/load:1', [await layerTar({ 'app/l': 'load\n' })]);
    const { p, logs } = provider({ delivery: 'load' });
    await p.expect(docker, { 'shop/load:1': v.id });
    await p.ensure(docker, ctx(v.dir), { 'shop/load:1': v.id }, signal);
    assert.equal((await image(v.id))?.Id, v.id);
    assert.ok(!logs.some((l) => l.message.includes('loopback')), JSON.stringify(logs));
    // An update pulled over an image docker load put there: the engine has no digest record for
    // the loaded base layer, so it fetches it again (slower) and the result is still exact.
    const v2 = await tree(join(dir, 'l2'), 'shop/load:2', [
      await layerTar({ 'app/l': 'load\n' }),
      await layerTar({ 'app/m': 'more\n' }),
    ]);
    const pulling = provider({ delivery: 'pull' });
    await pulling.p.expect(docker, { 'shop/load:2': v2.id });
    assert.deepEqual(pulling.p.expecting(), [], 'the pull opens nothing ahead');
    await pulling.p.ensure(docker, ctx(v2.dir), { 'shop/load:2': v2.id }, signal);
    assert.equal((await image(v2.id))?.Id, v2.id);
    assert.deepEqual((await image(v2.id))?.RepoTags, ['shop/load:2']);
    const pulled = pulling.logs.find((l) => l.message === "image pulled from the agent's loopback registry");
    assert.equal(pulled?.fields.blobs, 3, JSON.stringify(pulling.logs));
    assert.deepEqual(await loopbackRefs(), []);
    assert.equal(imageDeliveryFromEnv({}), 'load');
    assert.equal(imageDeliveryFromEnv({ FLOTILLA_DOCKER_IMAGE_DELIVERY: 'pull' }), 'pull');
    assert.equal(imageDeliveryFromEnv({ FLOTILLA_DOCKER_IMAGE_DELIVERY: 'load' }), 'load');
    assert.throws(
      () => imageDeliveryFromEnv({ FLOTILLA_DOCKER_IMAGE_DELIVERY: 'ftp' }),
      (e: unknown) => isFlotillaError(e) && e.code === 'FLT_VALIDATION',
    );
  });
});
