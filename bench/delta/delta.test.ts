/** The bench's own pieces: pack splitting and the byte-counting static server (run: node --test). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { packRecords } from './pack-records.js';
import { serveDirectory } from './static-server.js';

function record(bytes: Buffer): Buffer {
  const header = Buffer.alloc(36);
  createHash('sha256').update(bytes).digest().copy(header);
  header.writeUInt32BE(bytes.length, 32);
  return Buffer.concat([header, bytes]);
}

function pieces(all: Buffer, size: number): AsyncIterable<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < all.length; i += size) parts.push(all.subarray(i, i + size));
  return Readable.from(parts);
}

void test('records split across arbitrary read boundaries come out whole and in order', async () => {
  const a = Buffer.from('first record');
  const b = Buffer.alloc(70_000, 7);
  const pack = Buffer.concat([record(a), record(b), Buffer.alloc(32)]);
  for (const size of [1, 5, 33, 4096, pack.length]) {
    const got = [];
    for await (const r of packRecords(pieces(pack, size))) got.push(r.bytes);
    assert.deepEqual(got, [a, b]);
  }
});

void test('a pack that ends before its terminator is an error, not a short result', async () => {
  const pack = record(Buffer.from('only'));
  await assert.rejects(async () => {
    for await (const r of packRecords(pieces(pack, 7))) assert.ok(r);
  }, /before its terminator/);
});

void test('the static server counts body bytes and refuses paths outside its root', async () => {
  const root = await mkdtemp(join(tmpdir(), 'flt-delta-test-'));
  const server = await serveDirectory(root);
  try {
    await writeFile(join(root, 'file'), Buffer.alloc(1234, 1));
    const ok = await fetch(`${server.url}/file`);
    assert.equal((await ok.arrayBuffer()).byteLength, 1234);
    assert.equal((await fetch(`${server.url}/absent`)).status, 404);
    assert.equal((await fetch(`${server.url}/..%2F..%2F..%2Fetc%2Fpasswd`)).status, 404);
    assert.equal((await fetch(`${server.url}/%E0%A4%A`)).status, 400);
    assert.deepEqual(server.counters(), { bytes: 1234, requests: 4 });
    server.reset();
    assert.deepEqual(server.counters(), { bytes: 0, requests: 0 });
  } finally {
    await server.close();
    await rm(root, { recursive: true, force: true });
  }
});
