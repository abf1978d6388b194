import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FsStore, buildTree, diffTrees, materialize, verifyTree } from '../src/index.js';
import { seededBytes, withTempDir } from './helpers.js';
import { writeSampleTree } from './tree-fixtures.js';

void describe('an update as the server and the agent will run it', () => {
  void it('fetches only what changed, then materializes the new release from the local store alone', async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, 'src');
      await writeSampleTree(src);
      const server = await FsStore.open({ root: join(dir, 'server') });
      const device = await FsStore.open({ root: join(dir, 'device') });
      await mkdir(join(dir, 'releases'));

      // First install: everything is fetched.
      const v1 = await buildTree(src, { sink: server });
      const first = await diffTrees(server, null, v1.root, { have: (id) => device.has(id) });
      for (const id of [...first.objects, ...first.chunks])
        await device.putFrame(id, await server.getFrame(id));
      await materialize(device, v1.root, join(dir, 'releases/1'));

      // The release changes: 100 bytes inserted at the start of the 1 MiB file, one config edited.
      const big = join(src, 'lib/big/blob.bin');
      await writeFile(big, Buffer.concat([seededBytes(77, 100), seededBytes(21, 1024 * 1024 + 333)]));
      await writeFile(join(src, 'etc/app/app.conf'), 'listen = 9090\n');
      const v2 = await buildTree(src, { sink: server });

      // The device reads objects from the server only where its own store lacks them.
      const requestedFromServer: string[] = [];
      const reader = {
        getObject: async (id: string) => {
          if (await device.has(id)) return device.getObject(id);
          requestedFromServer.push(id);
          return server.getObject(id);
        },
      };
      const update = await diffTrees(reader, v1.root, v2.root, { have: (id) => device.has(id) });
      assert.deepEqual(
        update.modified.map((m) => m.path),
        ['etc/app/app.conf', 'lib/big/blob.bin'],
      );
      // Objects: root, etc, etc/app, lib, lib/big dirs and the two file objects.
      assert.equal(update.objects.length, 7);
      assert.deepEqual([...requestedFromServer].sort(), [...update.objects].sort());
      // FastCDC resynchronises after the insertion: only the first chunk(s) of the big file are new.
      assert.ok(
        update.chunks.length >= 2 && update.chunks.length <= 3,
        `${update.chunks.length} chunks to fetch`,
      );

      for (const id of [...update.objects, ...update.chunks])
        await device.putFrame(id, await server.getFrame(id));
      await materialize(device, v2.root, join(dir, 'releases/2'));
      assert.deepEqual(await verifyTree(device, join(dir, 'releases/2'), v2.root), {
        ok: true,
        problems: [],
      });
      assert.deepEqual(await verifyTree(device, join(dir, 'releases/1'), v1.root), {
        ok: true,
        problems: [],
      });
    });
  });
});
