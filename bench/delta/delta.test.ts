/** The bench's own pieces: the byte-counting static server (run: node --test). */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { serveDirectory } from './static-server.js';

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
