/**
 * GET /install.sh and GET /downloads/agent/<file> (docs/agent-lifecycle.md): served from the
 * configured directory, the script naming this server, names that could leave the directory
 * refused, and a clear 404 saying how to build what is missing.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { createTestApp } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';

let t: TestApp;
before(async () => {
  t = await createTestApp({ dialect: 'sqlite', config: { publicUrl: 'https://fleet.example.com/' } });
  const dir = join(t.dataDir, 'agent-downloads');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'install.sh'), "#!/bin/sh\nserver='__FLOTILLA_SERVER__'\n");
  await writeFile(join(dir, 'flotilla-agent-linux-x64.tar.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3]));
});
after(() => t.close());

void it('serves install.sh with this server URL, without credentials', async () => {
  const res = await t.app.inject({ method: 'GET', url: '/install.sh' });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/x-shellscript/);
  assert.equal(res.body, "#!/bin/sh\nserver='https://fleet.example.com'\n");
});

void it('serves a bundle and refuses names that could leave the directory', async () => {
  const ok = await t.app.inject({ method: 'GET', url: '/downloads/agent/flotilla-agent-linux-x64.tar.gz' });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual([...ok.rawPayload], [0x1f, 0x8b, 1, 2, 3]);
  for (const url of ['/downloads/agent/..%2Fflotilla.db', '/downloads/agent/.hidden']) {
    const res = await t.app.inject({ method: 'GET', url });
    assert.equal(res.statusCode, 400, url);
    assert.equal(res.json<{ error: { code: string } }>().error.code, 'FLT_VALIDATION');
  }
});

void it('answers 404 FLT_NOT_FOUND saying how to build a missing file', async () => {
  const res = await t.app.inject({
    method: 'GET',
    url: '/downloads/agent/flotilla-agent-linux-arm64.tar.gz',
  });
  assert.equal(res.statusCode, 404);
  const { error } = res.json<{ error: { code: string; message: string } }>();
  assert.equal(error.code, 'FLT_NOT_FOUND');
  assert.match(error.message, /flotilla agent bundle --downloads/);
});
