/** Uploads and downloads over a real listening server (streams, not inject's buffers). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { FRAME_CONTENT_TYPE, ObjectRoutes, PACK_CODEC_HEADER, PACK_CONTENT_TYPE } from '@flotilla/protocol';
import type { UploadResponse } from '@flotilla/protocol';
import { contentId, decodeFrame } from '@flotilla/store';
import { decompressor, readPack } from '../../src/objects/pack.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { assign, encodePack, noise, publish, recordsOf, treeOf } from './push.js';

forEachDialect((dialect) => {
  const withServer = async (fn: (t: TestApp, url: string) => Promise<void>) => {
    const t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
    try {
      await fn(t, await t.app.listen({ host: '127.0.0.1', port: 0 }));
    } finally {
      await t.close();
    }
  };
  const upload = (t: TestApp, url: string, body: Buffer, codec = 'zstd') =>
    fetch(`${url}${ObjectRoutes.upload}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${t.adminToken}`,
        'content-type': PACK_CONTENT_TYPE,
        [PACK_CODEC_HEADER]: codec,
      },
      body,
    });

  /** A device's pack download in `codec`, checked to be answered in it. */
  const downloadPack = async (url: string, token: string, ids: string[], codec: string) => {
    const pack = await fetch(`${url}${ObjectRoutes.pack}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ids, codec }),
    });
    assert.equal(pack.status, 200);
    assert.equal(pack.headers.get(PACK_CODEC_HEADER), codec);
    return pack;
  };

  void test('a multi-megabyte pack streams in, and a pack download streams out to a device', () =>
    withServer(async (t, url) => {
      const tree = await treeOf({ 'big.bin': noise(3_000_000), 'small.txt': 'small' });
      const ids = tree.store.ids();
      const res = await upload(t, url, await encodePack(await recordsOf(tree.store, ids), 'zstd'));
      assert.equal(res.status, 200);
      const result = (await res.json()) as UploadResponse;
      assert.equal(result.received, ids.length);

      const device = await acceptedDevice(t);
      await assign(t, await publish(t, tree, 'streamed', '1'), device.id);
      const pack = await downloadPack(url, device.token, ids, 'gzip');
      const records = Readable.fromWeb(pack.body! as never).pipe(decompressor('gzip'));
      const got: string[] = [];
      for await (const r of readPack(records, { maxRecordBytes: 1 << 24, maxTotalBytes: 1 << 26 }))
        got.push(r.id);
      assert.deepEqual(got, ids);
    }));

  void test('a pack of frames carries the stored frames as they are, uncompressed as a whole', () =>
    withServer(async (t, url) => {
      const tree = await treeOf({ 'big.bin': noise(1_000_000), 'text.txt': 'text '.repeat(20_000) });
      const ids = tree.store.ids();
      assert.equal(
        (await upload(t, url, await encodePack(await recordsOf(tree.store, ids), 'zstd'))).status,
        200,
      );
      const device = await acceptedDevice(t);
      await assign(t, await publish(t, tree, 'framed', '1'), device.id);
      const pack = await downloadPack(url, device.token, ids, 'frames');
      const body = Buffer.from(await pack.arrayBuffer());
      const got: string[] = [];
      let at = 0;
      for (;;) {
        const id = body.subarray(at, at + 32).toString('hex');
        if (/^0+$/.test(id)) break;
        const length = body.readUInt32BE(at + 32);
        const frame = body.subarray(at + 36, at + 36 + length);
        // The frame the server stores (its per-object GET serves it), byte for byte.
        const stored = await fetch(`${url}${ObjectRoutes.object.replace(':id', id)}`, {
          headers: { authorization: `Bearer ${device.token}`, accept: FRAME_CONTENT_TYPE },
        });
        assert.equal(frame.equals(Buffer.from(await stored.arrayBuffer())), true);
        assert.equal(contentId(decodeFrame(frame)), id);
        got.push(id);
        at += 36 + length;
      }
      assert.equal(at + 32, body.length);
      assert.deepEqual(got, ids);
      // Frames are a download codec only: an upload in it is refused.
      const refused = await upload(t, url, body, 'frames');
      assert.equal(refused.status, 400);
    }));

  void test('a corrupt upload gets its 400 over HTTP and the server keeps serving', () =>
    withServer(async (t, url) => {
      const tree = await treeOf({ 'c.bin': noise(500_000) });
      const records = await recordsOf(tree.store, tree.store.ids());
      records[0] = { id: records[0]!.id, bytes: Buffer.alloc(records[0]!.bytes.length) };
      const res = await upload(t, url, await encodePack(records, 'identity'), 'identity');
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'FLT_PACK_INVALID');
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);
    }));
});
