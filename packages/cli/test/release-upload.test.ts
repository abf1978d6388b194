import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { brotliDecompressSync } from 'node:zlib';
import { MemoryStore, buildTree } from '@flotilla/store';
import { ObjectRoutes, PACK_CODEC_HEADER, PACK_CONTENT_TYPE } from '@flotilla/protocol';
import type { PackCodec, UploadResponse } from '@flotilla/protocol';
import { ApiClient } from '../src/api/client.js';
import { encodePack } from '../src/push/pack.js';
import { httpTransport } from '../src/push/transport.js';
import type { ObjectTransport } from '../src/push/transport.js';
import { UploadSink } from '../src/push/upload-sink.js';
import { scriptedServer, sendJson } from '@flotilla/testkit';
import { randomFiles, tempDir, writeTree } from './release-fixtures.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Reads a pack back record by record, as the protocol defines it. */
function decodePack(pack: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let at = 0;
  for (;;) {
    const id = pack.subarray(at, at + 32);
    at += 32;
    if (id.every((b) => b === 0)) break;
    const length = pack.readUInt32BE(at);
    at += 4;
    records.set(id.toString('hex'), pack.subarray(at, at + length));
    at += length;
  }
  assert.equal(at, pack.length, 'nothing after the end marker');
  return records;
}

/** A server in memory: knows some ids, records every request. */
class RecordingTransport implements ObjectTransport {
  readonly stored = new Map<string, Buffer>();
  readonly askedBatches: number[] = [];
  readonly packs: Buffer[] = [];
  failUploads = false;

  missing(ids: readonly string[]): Promise<string[]> {
    this.askedBatches.push(ids.length);
    return Promise.resolve(ids.filter((id) => !this.stored.has(id)));
  }

  upload(pack: Buffer, codec: PackCodec): Promise<UploadResponse> {
    assert.equal(codec, 'br');
    if (this.failUploads) return Promise.reject(new Error('connection reset'));
    this.packs.push(pack);
    const records = decodePack(brotliDecompressSync(pack));
    for (const [id, bytes] of records) {
      assert.equal(sha(bytes), id, 'every record is named by its hash');
      this.stored.set(id, Buffer.from(bytes));
    }
    const bytes = [...records.values()].reduce((n, b) => n + b.length, 0);
    return Promise.resolve({ received: records.size, duplicates: 0, bytes, wireBytes: pack.length });
  }
}

void describe('pack encoding and the uploading sink', () => {
  void test('a pack is id, length, bytes per record and 32 zero bytes', () => {
    const a = Buffer.from('hello');
    const pack = encodePack([{ id: sha(a), bytes: a }]);
    assert.equal(pack.length, 32 + 4 + 5 + 32);
    assert.deepEqual(decodePack(pack), new Map([[sha(a), a]]));
    assert.throws(() => encodePack([{ id: 'not-an-id', bytes: a }]), { code: 'FLT_VALIDATION' });
  });

  void test('uploads in bounded batches exactly what the server lacks, and the tree is complete', async () => {
    const dir = await tempDir('flt-cli-sink-');
    try {
      await writeTree(dir, { ...randomFiles(12, 64 * 1024), 'a/b/c.txt': 'deep\n', 'same.txt': 'deep\n' });
      const transport = new RecordingTransport();
      const sink = new UploadSink({ transport, maxBatchBytes: 128 * 1024 });
      const first = await buildTree(dir, { sink });
      const stats = await sink.finish();
      assert.ok(transport.askedBatches.length > 3, 'several batches');
      assert.equal(stats.uploadedBytes, stats.bytes);
      assert.equal(sink.rootLength(first.root) > 0, true);

      // Every object of the tree is on the "server": the same tree built into a store needs nothing else.
      const reference = new MemoryStore();
      const again = await buildTree(dir, { sink: reference });
      assert.equal(again.root, first.root);
      assert.equal(transport.stored.size, first.stats.uniqueChunks + first.stats.newObjects);

      // One file changes: only its chunks, its file object and the directories above it go up.
      await writeTree(dir, { 'data/file-03.bin': randomBytes(64 * 1024) });
      const second = new UploadSink({ transport });
      await buildTree(dir, { sink: second });
      const delta = await second.finish();
      assert.ok(
        delta.uploadedBytes < 0.15 * delta.bytes,
        `uploaded ${delta.uploadedBytes} of ${delta.bytes}`,
      );
      assert.ok(delta.uploadedObjects >= 3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void test('a failed upload fails the push (no unhandled rejection, no false success)', async () => {
    const dir = await tempDir('flt-cli-sink-');
    try {
      await writeTree(dir, randomFiles(8, 64 * 1024));
      const transport = new RecordingTransport();
      transport.failUploads = true;
      const sink = new UploadSink({ transport, maxBatchBytes: 64 * 1024 });
      await assert.rejects(
        (async () => {
          await buildTree(dir, { sink });
          await sink.finish();
        })(),
        /connection reset/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void test("the HTTP transport refuses stray ids and surfaces the server's error code", async () => {
    const stray = 'f'.repeat(64);
    const server = await scriptedServer((req, res) => {
      if (req.url === ObjectRoutes.missing) sendJson(res, 200, { missing: [stray] });
      else
        sendJson(res, 400, {
          error: { code: 'FLT_PACK_INVALID', message: 'record 1 does not match its id' },
        });
    });
    try {
      const transport = httpTransport(new ApiClient({ baseUrl: server.url, token: 't' }), 't');
      await assert.rejects(transport.missing(['a'.repeat(64)]), {
        code: 'FLT_NETWORK',
        message: /an object it was not asked about/,
      });
      await assert.rejects(transport.upload(Buffer.from('x'), 'br'), { code: 'FLT_PACK_INVALID' });
      const upload = server.requests.find((r) => r.url === ObjectRoutes.upload);
      assert.equal(upload?.headers['content-type'], PACK_CONTENT_TYPE);
      assert.equal(upload?.headers[PACK_CODEC_HEADER], 'br');
      assert.equal(upload?.headers.authorization, 'Bearer t');
    } finally {
      await server.close();
    }
  });

  void test('rootLength refuses an id that was not the last object', async () => {
    const sink = new UploadSink({ transport: new RecordingTransport() });
    await sink.putObject(sha(Buffer.from('x')), Buffer.from('x'));
    assert.throws(() => sink.rootLength('0'.repeat(64)), { code: 'FLT_INTERNAL' });
  });
});
