import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PrecomputeDeltasResponse } from '@flotilla/protocol';
import { json } from './helpers/memory-io.js';
import type { TestServer } from './helpers/server.js';
import { loggedInServer, tempDir, writeTree } from './release-fixtures.js';

const PASSPHRASE = 'release delta test passphrase';
const env = { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE };

/** Text that compresses about as well as source code, with random tokens so no two runs match. */
function source(lines: number): string {
  return Array.from({ length: lines }, (_, i) => `line ${i} ${randomBytes(8).toString('hex')}\n`).join('');
}

void describe('flotilla release delta against a real server', () => {
  let srv: TestServer;
  let work: string;
  let tree: string;
  const app = 'deltaweb';
  before(async () => {
    srv = await loggedInServer();
    work = await tempDir('flt-cli-delta-');
    tree = join(work, 'site');
    const init = await srv.run(['keys', 'init', '--passphrase-stdin'], { stdin: PASSPHRASE });
    assert.equal(init.code, 0, init.stderr);
    const main = source(8000);
    await writeTree(tree, { 'main.js': main, 'static/logo.bin': randomBytes(50_000), README: 'v1\n' });
    const push = (version: string) =>
      srv.run(['release', 'push', tree, '--app', app, '--version', version, '--json'], { env });
    assert.equal((await push('1.0.0')).code, 0);
    await writeFile(join(tree, 'main.js'), main.replace('line 4000 ', 'line 4000 EDITED '));
    await writeFile(join(tree, 'README'), 'v2\n');
    await writeFile(join(tree, 'added.txt'), 'new in v2\n');
    const second = await push('2.0.0');
    assert.equal(second.code, 0, second.stderr);
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  void test('--json: the totals of the precomputed deltas', async () => {
    const res = await srv.run(['release', 'delta', `${app}@1.0.0`, `${app}@2.0.0`, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const out = json<PrecomputeDeltasResponse>(res);
    assert.deepEqual([out.app, out.from, out.to], [app, '1.0.0', '2.0.0']);
    // main.js and README changed at their paths; added.txt has no base; logo.bin is unchanged.
    assert.equal(out.files, 2);
    assert.ok(out.deltas >= 1, JSON.stringify(out));
    assert.ok(out.deltaBytes < out.plainBytes, JSON.stringify(out));
  });

  void test('the table: files, deltas, delta MB, plain MB, ratio, seconds', async () => {
    const res = await srv.run(['release', 'delta', `${app}@1.0.0`, `${app}@2.0.0`, '--timeout', '2m']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^FROM\s+TO\s+FILES\s+DELTAS\s+DELTA MB\s+PLAIN MB\s+RATIO\s+SECONDS/);
    assert.match(res.stdout, /\n1\.0\.0\s+2\.0\.0\s+2\s+[12]\s+\d+\.\d\d\s+\d+\.\d\d\s+0\.\d{3}\s+\d+\.\d\n/);
    assert.match(res.stdout, /of 2 changed files get a delta; a device on 1\.0\.0 fetches/);
  });

  void test('errors: two apps, an unknown release, a bad timeout', async () => {
    const apps = await srv.run(['release', 'delta', `${app}@1.0.0`, 'other@2.0.0']);
    assert.equal(apps.code, 1);
    assert.match(apps.stderr, /FLT_VALIDATION/);
    const unknown = await srv.run(['release', 'delta', `${app}@0.9.0`, `${app}@2.0.0`]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /FLT_NOT_FOUND/);
    const timeout = await srv.run(['release', 'delta', `${app}@1.0.0`, `${app}@2.0.0`, '--timeout', '5']);
    assert.equal(timeout.code, 2);
  });

  void test('--help explains the command', async () => {
    const res = await srv.run(['release', 'delta', '--help']);
    assert.equal(res.code, 0);
    assert.match(res.stdout, /Usage: flotilla release delta \[options\] <from> <to>/);
    assert.match(res.stdout, /--timeout <duration>/);
    assert.match(res.stdout, /ostree static-delta generate/);
  });
});
