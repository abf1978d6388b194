/** The dashboard's static serving rules, and the build's initial-JavaScript budget. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { buildDashboard } from '../src/build.js';
import type { BuildReport } from '../src/build.js';
import { buildReportFile, dashboardDir, INITIAL_JS_BUDGET_BYTES } from '../src/paths.js';
import { DashboardFiles } from '../src/serve.js';

void describe('DashboardFiles', () => {
  let dir: string;
  let files: DashboardFiles;
  const html = '<!doctype html><title>x</title>' + ' '.repeat(600);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-web-serve-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), html);
    await writeFile(join(dir, 'assets', 'index-abc123.js'), 'console.log(1);'.repeat(100));
    await writeFile(join(dir, 'manifest.json'), '{}');
    await writeFile(join(dir, 'build-report.json'), '{}');
    files = await DashboardFiles.load(dir);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  void test('the shell: no-cache, ETag, CSP; a matching If-None-Match is 304', () => {
    const r = files.respond('/', {});
    assert.equal(r?.status, 200);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.match(r.headers['content-security-policy'] ?? '', /script-src 'self'/);
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(files.respond('/', { ifNoneMatch: r.headers.etag })?.status, 304);
    assert.equal(files.respond('/', { ifNoneMatch: '"other"' })?.status, 200);
  });

  void test('hashed assets are immutable and gzipped when the client accepts it', () => {
    const r = files.respond('/assets/index-abc123.js', { acceptEncoding: 'gzip, br' });
    assert.equal(r?.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(r.body!).toString(), 'console.log(1);'.repeat(100));
    assert.equal(files.respond('/assets/index-abc123.js', {})?.headers['content-encoding'], undefined);
  });

  void test('client routes get the shell, even with a dot; files and reserved paths do not', () => {
    for (const p of ['/devices', '/devices/dev_1', '/releases/web/1.1.0', '/rollouts/new'])
      assert.equal(files.respond(p, {})?.headers['content-type'], 'text/html; charset=utf-8', p);
    for (const p of [
      '/assets/missing.js',
      '/logo.png',
      '/manifest.json',
      '/build-report.json',
      '/api/v1/devices',
      '/api/v1/nope',
      '/tuf/image/root.json',
      '/docs',
      '/docs/static/x',
      '/openapi.json',
      '/metrics',
      '/healthz',
      '/readyz',
      '/install.sh',
      '/downloads/agent/x',
    ])
      assert.equal(files.respond(p, {}), null, p);
  });

  void test('a directory without index.html is refused at load (not built)', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'flt-web-empty-'));
    await assert.rejects(DashboardFiles.load(empty), /not built/);
    await rm(empty, { recursive: true, force: true });
  });
});

void test('the built dashboard: initial JavaScript within the 300 KB gzipped budget', async () => {
  if (!existsSync(buildReportFile)) await buildDashboard({ quiet: true });
  const report = JSON.parse(await readFile(buildReportFile, 'utf8')) as BuildReport;
  assert.ok(existsSync(join(dashboardDir, 'index.html')));
  assert.ok(report.initialJs.length > 0, 'the entry chunk is measured');
  console.log(`initial JavaScript: ${(report.initialJsGzipBytes / 1024).toFixed(1)} KB gzipped`);
  assert.ok(
    report.initialJsGzipBytes <= INITIAL_JS_BUDGET_BYTES,
    `${report.initialJsGzipBytes} bytes gzipped is over the budget of ${INITIAL_JS_BUDGET_BYTES}`,
  );
});
