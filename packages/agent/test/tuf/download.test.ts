import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FileServer } from './fixture.js';
import { downloadVerified } from '../../src/tuf/index.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function served(t: { after(fn: () => Promise<void>): void }): Promise<FileServer> {
  const server = new FileServer();
  await server.start();
  t.after(() => server.stop());
  return server;
}

void test('bytes of the declared length and hash are returned', async (t) => {
  const server = await served(t);
  const chunk = Buffer.from('chunk bytes');
  server.files.set('/c', chunk);
  assert.deepEqual(
    await downloadVerified(`${server.url}/c`, { length: chunk.length, sha256: sha(chunk) }),
    chunk,
  );
});

void test('bytes altered on disk or in transit (same length) are refused as FLT_TUF_HASH', async (t) => {
  const server = await served(t);
  const chunk = Buffer.from('chunk bytes');
  server.files.set('/c', Buffer.from('chunk BYTES'));
  await assert.rejects(downloadVerified(`${server.url}/c`, { length: chunk.length, sha256: sha(chunk) }), {
    code: 'FLT_TUF_HASH',
  });
});

void test('endless, announced-too-long and short bodies are refused as FLT_TUF_LENGTH', async (t) => {
  const server = await served(t);
  const chunk = Buffer.from('chunk bytes');
  server.endless.add('/endless');
  await assert.rejects(downloadVerified(`${server.url}/endless`, { length: 1024, sha256: sha(chunk) }), {
    code: 'FLT_TUF_LENGTH',
  });
  server.files.set('/long', Buffer.concat([chunk, Buffer.from('more')]));
  await assert.rejects(downloadVerified(`${server.url}/long`, { length: chunk.length, sha256: sha(chunk) }), {
    code: 'FLT_TUF_LENGTH',
  });
  server.files.set('/short', chunk.subarray(0, 5));
  await assert.rejects(
    downloadVerified(`${server.url}/short`, { length: chunk.length, sha256: sha(chunk) }),
    { code: 'FLT_TUF_LENGTH' },
  );
});

void test('missing objects and bad expectations are refused with their codes', async (t) => {
  const server = await served(t);
  await assert.rejects(downloadVerified(`${server.url}/nope`, { length: 1, sha256: 'a'.repeat(64) }), {
    code: 'FLT_TUF_FETCH',
  });
  await assert.rejects(downloadVerified(`${server.url}/nope`, { length: -1, sha256: 'a'.repeat(64) }), {
    code: 'FLT_VALIDATION',
  });
  await assert.rejects(downloadVerified(`${server.url}/nope`, { length: 1, sha256: 'xyz' }), {
    code: 'FLT_VALIDATION',
  });
});
