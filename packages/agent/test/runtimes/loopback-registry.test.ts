import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { serveImage } from '../../src/runtimes/docker/loopback-registry.js';
import type { TreeImage } from '../../src/runtimes/docker/tree-image.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

void test('the loopback registry tells when a layer stream has begun, and serves the layer intact', async (t) => {
  const layer = Buffer.alloc(3 * 1024 * 1024, 7);
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
  const events: string[] = [];
  const image: TreeImage = {
    id: sha(config),
    config,
    layers: [
      {
        path: 'layer-001.tar',
        diffId: sha(layer),
        size: layer.length,
        file: {
          size: layer.length,
          pieces: async function* () {
            events.push('first piece asked for');
            await Promise.resolve();
            for (let at = 0; at < layer.length; at += 1024 * 1024) yield layer.subarray(at, at + 1024 * 1024);
          },
          close: () => Promise.resolve(),
        },
      },
    ],
  };
  const registry = await serveImage(image, 'app:1', {
    rereadable: true,
    onFailed: () => events.push('failed'),
    onLayerRequested: () => events.push('layer requested'),
  });
  t.after(() => registry.close());
  const [host, rest] = [
    registry.ref.slice(0, registry.ref.indexOf('/')),
    registry.ref.slice(registry.ref.indexOf('/') + 1),
  ];
  const repo = rest.slice(0, rest.indexOf('@'));
  const base = `http://${host}/v2/${repo}`;
  // The manifest, the config and a HEAD of the layer are no layer stream.
  assert.equal((await fetch(`${base}/manifests/${rest.slice(rest.indexOf('@') + 1)}`)).status, 200);
  assert.equal((await fetch(`${base}/blobs/${image.id}`)).status, 200);
  assert.equal((await fetch(`${base}/blobs/${sha(layer)}`, { method: 'HEAD' })).status, 200);
  assert.deepEqual(events, []);
  const got = Buffer.from(await (await fetch(`${base}/blobs/${sha(layer)}`)).arrayBuffer());
  assert.equal(got.equals(layer), true);
  assert.deepEqual(events, ['first piece asked for', 'layer requested']);
});
