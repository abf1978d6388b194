/** fetchPacks against a real HTTP server and the real zstd tool, including broken responses. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { fetchPacks } from './pack-client.js';

function record(bytes: Buffer): { id: string; wire: Buffer } {
  const digest = createHash('sha256').update(bytes).digest();
  const header = Buffer.alloc(36);
  digest.copy(header);
  header.writeUInt32BE(bytes.length, 32);
  return { id: digest.toString('hex'), wire: Buffer.concat([header, bytes]) };
}

function zstd(bytes: Buffer): Buffer {
  return spawnSync('zstd', ['-q', '-c'], { input: bytes, maxBuffer: 1 << 26 }).stdout;
}

async function withServer(status: number, body: Buffer, work: (base: string) => Promise<void>) {
  const server = createServer((_req, res) => res.writeHead(status).end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await work(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const a = record(Buffer.from('an object'));
const b = record(Buffer.alloc(300_000, 3));

void test('records arrive whole and the compressed response bytes are counted', async () => {
  const body = zstd(Buffer.concat([a.wire, b.wire, Buffer.alloc(32)]));
  await withServer(200, body, async (base) => {
    const got = new Map<string, number>();
    const wire = await fetchPacks(base, 't', [a.id, b.id], (id, bytes) => {
      got.set(id, bytes.length);
      return Promise.resolve();
    });
    assert.equal(wire, body.length);
    assert.deepEqual(
      got,
      new Map([
        [a.id, 9],
        [b.id, 300_000],
      ]),
    );
  });
});

void test('a pack cut before its terminator fails instead of looking complete', async () => {
  await withServer(200, zstd(a.wire), async (base) => {
    await assert.rejects(fetchPacks(base, 't', [a.id], null), /terminator/);
  });
});

void test('a pack with fewer records than asked fails', async () => {
  await withServer(200, zstd(Buffer.concat([a.wire, Buffer.alloc(32)])), async (base) => {
    await assert.rejects(fetchPacks(base, 't', [a.id, b.id], null), /carried 1 records, asked 2/);
  });
});

void test('bytes that are not zstd and error statuses fail with a clear error', async () => {
  await withServer(200, Buffer.from('not a zstd stream at all'), async (base) => {
    await assert.rejects(fetchPacks(base, 't', [a.id], null));
  });
  await withServer(404, Buffer.from('{"code":"FLT_OBJECT_MISSING"}'), async (base) => {
    await assert.rejects(fetchPacks(base, 't', [a.id], null), /pack: 404/);
  });
});
