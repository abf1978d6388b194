/**
 * JSON nested too deep is refused with 400 FLT_JSON_TOO_DEEP on every route, over real HTTP, before
 * any handler or schema walks it (issue 13 item 9): a release config nested 5,000 deep and a body
 * nested 20,000 deep to the TUF upload routes used to overflow the stack and answer 500.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { MAX_JSON_DEPTH, ReleaseRoutes } from '@flotilla/protocol';
import { bearer, createTestApp } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { pushTree, treeOf } from '../objects/push.js';
import type { BuiltTree } from '../objects/push.js';

/** `{"k":{"k":…{"k":1}…}}`, `depth` objects deep. */
function nestedObject(depth: number): string {
  return '{"k":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** Objects, `depth` deep in all, as a JS value (built from text: no recursion here either). */
function nestedValue(depth: number): Record<string, unknown> {
  return JSON.parse(nestedObject(depth)) as Record<string, unknown>;
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error?: { code: string; message: string } };
  return { status: res.status, code: body.error?.code ?? '', message: body.error?.message ?? '' };
}

let t: TestApp;
let base: string;
let tree: BuiltTree;

before(async () => {
  t = await createTestApp({ dialect: 'sqlite', config: { bodyLimitBytes: 1024 * 1024 } });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.server.address();
  assert.ok(address && typeof address === 'object');
  base = `http://127.0.0.1:${address.port}`;
  tree = await treeOf({ 'a.txt': 'deep config' });
  await pushTree(t, tree);
});
after(() => t.close());

function post(path: string, body: string): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
    body,
  });
}

void it('a release config nested 5,000 deep is 400 FLT_JSON_TOO_DEEP and creates nothing', async () => {
  const body = JSON.stringify({ app: 'deep', version: '1', runtime: 'files', rootObject: tree.root }).replace(
    /}$/,
    `,"config":${nestedObject(5000)}}`,
  );
  const err = await errorOf(await post(ReleaseRoutes.releases, body));
  assert.equal(err.status, 400, err.message);
  assert.equal(err.code, 'FLT_JSON_TOO_DEEP');
  assert.match(err.message, new RegExp(`${MAX_JSON_DEPTH}`));
  const list = await fetch(`${base}${ReleaseRoutes.releases}`, { headers: bearer(t.adminToken) });
  assert.deepEqual(((await list.json()) as { items: unknown[] }).items, []);
});

void it('a config within the bound is accepted', async () => {
  const body = JSON.stringify({
    app: 'deep',
    version: '2',
    // lxc's config has no schema of its own yet (files, process and docker refuse unknown keys).
    runtime: 'lxc',
    rootObject: tree.root,
    config: nestedValue(MAX_JSON_DEPTH - 1),
  });
  const res = await post(ReleaseRoutes.releases, body);
  assert.equal(res.status, 201, await res.text());
});

void it('bodies nested 20,000 deep to the TUF uploads are 400 FLT_JSON_TOO_DEEP', async () => {
  for (const path of ['/api/v1/tuf/root', '/api/v1/tuf/targets']) {
    for (const body of [nestedObject(20_000), '['.repeat(20_000) + ']'.repeat(20_000)]) {
      const err = await errorOf(await post(path, body));
      assert.equal(err.status, 400, `${path}: ${err.message}`);
      assert.equal(err.code, 'FLT_JSON_TOO_DEEP', path);
    }
  }
});

void it('brackets inside strings do not count, and the server keeps serving', async () => {
  const body = JSON.stringify({ username: '[{'.repeat(10_000), password: '"\\[{' });
  const err = await errorOf(await post('/api/v1/auth/login', body));
  assert.notEqual(err.code, 'FLT_JSON_TOO_DEEP');
  assert.ok(err.status < 500, err.message);
  const res = await fetch(`${base}/healthz`);
  assert.equal(res.status, 200);
  await res.arrayBuffer();
});
