import assert from 'node:assert/strict';
import { readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FsStore, contentId, encodeFrame, readFrameHeader } from '../src/index.js';
import { seededBytes, withTempDir } from './helpers.js';

const text = Buffer.from('a chunk of configuration text\n'.repeat(500));

// Every case runs with the promise API (the server) and with synchronous calls (the agent's cache).
for (const syncIo of [false, true]) {
  void describe(`FsStore (syncIo: ${String(syncIo)})`, () => {
    void it('stores by content id in ab/cdef… layout, compressed, and reads back', async () => {
      await withTempDir(async (dir) => {
        const store = await FsStore.open({ syncIo, root: dir });
        const id = contentId(text);
        assert.equal(await store.has(id), false);
        const written = await store.putChunk(id, text);
        assert.equal(await store.putChunk(id, text), 0, 'a second put writes nothing');
        assert.equal(await store.has(id), true);
        const path = join(dir, 'objects', id.slice(0, 2), id.slice(2));
        assert.equal(store.pathOf(id), path);
        const frame = await readFile(path);
        assert.equal(readFrameHeader(frame).codec, 'zstd');
        assert.ok(frame.length < text.length);
        assert.equal(written, frame.length, 'a put tells the bytes it wrote');
        assert.ok(Buffer.from(await store.getChunk(id)).equals(text));
        assert.ok((await store.getFrame(id)).equals(frame));
        assert.deepEqual(await readdir(join(dir, 'tmp')), []);
      });
    });

    void it('refuses bytes that do not match the id and writes nothing', async () => {
      await withTempDir(async (dir) => {
        const store = await FsStore.open({ syncIo, root: dir });
        const id = contentId(text);
        await assert.rejects(store.putObject(id, Buffer.from('something else')), {
          code: 'FLT_HASH_MISMATCH',
        });
        assert.equal(await store.has(id), false);
        await assert.rejects(store.putFrame(id, encodeFrame(Buffer.from('other'))), {
          code: 'FLT_HASH_MISMATCH',
        });
        assert.equal(await store.has(id), false);
        assert.deepEqual(await readdir(join(dir, 'tmp')), []);
      });
    });

    void it('refuses ids that are not SHA-256 hex (no path tricks)', async () => {
      await withTempDir(async (dir) => {
        const store = await FsStore.open({ syncIo, root: dir });
        for (const id of ['../../etc/passwd', 'A'.repeat(64), 'ab', `${'a'.repeat(63)}/`]) {
          await assert.rejects(store.has(id), { code: 'FLT_VALIDATION' });
          await assert.rejects(store.getChunk(id), { code: 'FLT_VALIDATION' });
          await assert.rejects(store.putChunk(id, text), { code: 'FLT_VALIDATION' });
        }
      });
    });

    void it('detects a corrupted object on read', async () => {
      await withTempDir(async (dir) => {
        const store = await FsStore.open({ syncIo, root: dir });
        const noise = seededBytes(12, 4096);
        const id = contentId(noise);
        await store.putChunk(id, noise);
        const path = store.pathOf(id);
        const frame = await readFile(path);
        frame[frame.length - 1]! ^= 0x01;
        await writeFile(path, frame);
        await assert.rejects(store.getChunk(id), { code: 'FLT_HASH_MISMATCH' });
        await assert.rejects(store.getFrame(id), { code: 'FLT_HASH_MISMATCH' });

        const textId = contentId(text);
        await store.putChunk(textId, text);
        const compressed = await readFile(store.pathOf(textId));
        await writeFile(store.pathOf(textId), compressed.subarray(0, compressed.length - 3));
        await assert.rejects(store.getObject(textId), { code: 'FLT_CHUNK_ENCODING_INVALID' });

        const unverified = await FsStore.open({ syncIo, root: dir, verifyOnRead: false });
        assert.equal((await unverified.getChunk(id)).length, noise.length);
      });
    });

    void it('reports missing ids, lists and removes', async () => {
      await withTempDir(async (dir) => {
        const store = await FsStore.open({ syncIo, root: dir, fsync: false });
        const a = Buffer.from('a');
        const b = Buffer.from('b');
        await store.putChunk(contentId(a), a);
        await assert.rejects(store.getChunk(contentId(b)), { code: 'FLT_OBJECT_MISSING' });
        assert.deepEqual(await store.missing([contentId(a), contentId(b), contentId(b)]), [contentId(b)]);
        const listed: string[] = [];
        for await (const id of store.list()) listed.push(id);
        assert.deepEqual(listed, [contentId(a)]);
        assert.equal(await store.remove(contentId(a)), true);
        assert.equal(await store.remove(contentId(a)), false);
        assert.equal(await store.has(contentId(a)), false);
      });
    });

    void it('accepts a valid frame as is (uploads) and serves it unchanged', async () => {
      await withTempDir(async (dir) => {
        const store = await FsStore.open({ syncIo, root: dir });
        const frame = encodeFrame(text, { codec: 'gzip' });
        await store.putFrame(contentId(text), frame);
        assert.ok((await store.getFrame(contentId(text))).equals(frame));
        assert.ok(Buffer.from(await store.getChunk(contentId(text))).equals(text));
      });
    });

    void it('removes stale temp files left by a crash when opened, but not recent ones', async () => {
      await withTempDir(async (dir) => {
        await FsStore.open({ syncIo, root: dir });
        await writeFile(join(dir, 'tmp', 'old'), 'partial');
        await writeFile(join(dir, 'tmp', 'recent'), 'in progress');
        const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
        await utimes(join(dir, 'tmp', 'old'), twoHoursAgo, twoHoursAgo);
        await FsStore.open({ syncIo, root: dir });
        assert.deepEqual(await readdir(join(dir, 'tmp')), ['recent']);
      });
    });
  });
}
