/**
 * `release push --image … --images-from archive:PATH` against a real server: the image lands in
 * the signed tree under .flotilla/images with its id, v2 of the image (one file of its layer
 * changed) pairs its layer with v1's for a delta, and an image the archive lacks is refused before
 * anything is pushed. The archives are written here in `docker save` format (no dockerd needed).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar-stream';
import type { PrecomputeDeltasResponse } from '@flotilla/protocol';
import { json } from './helpers/memory-io.js';
import type { TestServer } from './helpers/server.js';
import { loggedInServer, tempDir } from './release-fixtures.js';

const PASSPHRASE = 'release images test passphrase';
const env = { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE };
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function tarOf(entries: Record<string, Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) parts.push(c as Buffer);
  })();
  for (const [name, content] of Object.entries(entries)) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name, size: content.length, mode: 0o644, mtime: new Date(1_700_000_000_000) },
        content,
        (e) => (e ? reject(e) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(parts);
}

/** A docker save archive of one image tagged `ref` with one layer holding `files`; returns its id. */
async function saveArchive(path: string, ref: string, files: Record<string, Buffer>): Promise<string> {
  const layer = await tarOf(files);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/app/run'] },
      rootfs: { type: 'layers', diff_ids: [sha(layer)] },
    }),
  );
  const id = sha(config);
  const manifest = Buffer.from(
    JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: [ref], Layers: ['l1/layer.tar'] }]),
  );
  await writeFile(
    path,
    await tarOf({ [`${id.slice(7)}.json`]: config, 'l1/layer.tar': layer, 'manifest.json': manifest }),
  );
  return id;
}

void describe('release push --image against a real server', () => {
  let srv: TestServer;
  let work: string;
  const big = randomBytes(400_000);
  before(async () => {
    srv = await loggedInServer();
    work = await tempDir('flt-cli-images-');
    const init = await srv.run(['keys', 'init', '--passphrase-stdin'], { stdin: PASSPHRASE });
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  void test('images travel in the tree; a changed layer pairs for a delta; a missing image is refused', async () => {
    const tree = join(work, 'shop');
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, 'docker-compose.yml'), 'services: {}\n');
    const push = async (version: string, ref: string, archive: string) =>
      srv.run(
        [
          'release',
          'push',
          tree,
          '--app',
          'shop',
          '--version',
          version,
          '--image',
          ref,
          '--images-from',
          `archive:${archive}`,
          '--json',
        ],
        { env },
      );
    const a1 = join(work, 'v1.tar');
    const id1 = await saveArchive(a1, 'shop/web:1', {
      'app/data.bin': big,
      'app/version': Buffer.from('1\n'),
    });
    const r1 = await push('1.0.0', 'shop/web:1', a1);
    assert.equal(r1.code, 0, r1.stderr);
    assert.deepEqual(json<{ images: Record<string, string> }>(r1).images, { 'shop/web:1': id1 });

    const a2 = join(work, 'v2.tar');
    const changed = Buffer.from(big);
    changed.write('EDITED', 200_000);
    const id2 = await saveArchive(a2, 'shop/web:2', {
      'app/data.bin': changed,
      'app/version': Buffer.from('2\n'),
    });
    const r2 = await push('2.0.0', 'shop/web:2', a2);
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(json<{ images: Record<string, string> }>(r2).images, { 'shop/web:2': id2 });

    // The layer, config and manifest of shop/web changed at the same paths: deltas against v1's.
    const delta = await srv.run(['release', 'delta', 'shop@1.0.0', 'shop@2.0.0', '--json']);
    assert.equal(delta.code, 0, delta.stderr);
    const out = json<PrecomputeDeltasResponse>(delta);
    assert.ok(out.files >= 2, JSON.stringify(out));
    // plainBytes: the changed chunks without deltas; the delta carries only the edit.
    assert.ok(out.deltaBytes * 10 < out.plainBytes, JSON.stringify(out));

    const bad = await push('3.0.0', 'shop/absent:1', a2);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /FLT_IMAGE_MISSING/);
    const bogus = await srv.run([
      'release',
      'push',
      tree,
      '--app',
      'shop',
      '--version',
      '3.0.1',
      '--images-from',
      'ftp:x',
    ]);
    assert.notEqual(bogus.code, 0);
    assert.match(bogus.stderr, /engine, archive:PATH, oci:PATH/);
  });
});
