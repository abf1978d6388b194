/**
 * The dashboard in a real browser (Debian's Chromium via playwright-core) against a real server
 * with devices enrolled over HTTP and a real agent running a deployed release: sign in, the
 * overview, filtering devices with the RSQL box and the builder, sorting, device detail, releases
 * and their diff, every page checked by axe-core at desktop and phone width (screenshots saved to
 * docs/screenshots/), a viewer sees no mutating control and the API refuses them, and features
 * the server lacks (404) degrade to a note.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { pino } from 'pino';
import { openDatabase } from '@flotilla/server';
import { enrollDevice } from '@flotilla/testkit';
import {
  ADMIN_PASSWORD,
  Api,
  Browsing,
  Cli,
  DESKTOP,
  PHONE,
  WebServer,
  axe,
  browserMissing,
  describeViolations,
  screenshot,
  signIn,
  startAgent,
  waitFor,
} from './harness.js';

const missing = browserMissing();
const VIEWER = { username: 'vera', password: 'viewer-password-1' };

void describe('dashboard in Chromium', { skip: missing ?? false }, () => {
  let server: WebServer;
  let admin: Api;
  let browsing: Browsing;
  let work: string;
  let agent: ChildProcess | null = null;
  let agentId = '';
  const simulated: string[] = [];

  before(async () => {
    server = await WebServer.start();
    admin = await Api.login(server.url, 'admin', ADMIN_PASSWORD);
    await admin.ok('POST', '/api/v1/users', { ...VIEWER, role: 'viewer' });
    work = await mkdtemp(join(tmpdir(), 'flt-web-work-'));
    // Twelve simulated devices over the device API: 8 accepted (lab), 4 pending (edge).
    const manual = await admin.ok<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'lab',
      tags: ['lab'],
    });
    for (let i = 0; i < 12; i++) {
      const d = await enrollDevice(server.url, manual.secret, {
        tags: i < 8 ? ['lab'] : ['edge'],
        facts: {
          hostname: `sim-${String(i).padStart(2, '0')}`,
          arch: i % 2 ? 'arm64' : 'amd64',
          os: 'linux',
        },
      });
      simulated.push(d.deviceId);
      if (i < 8) await admin.ok('POST', `/api/v1/devices/${d.deviceId}/accept`, {});
    }
    // A real agent, auto-accepted, with two releases of a static app pushed by the real CLI.
    const auto = await admin.ok<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'agents',
      tags: ['real'],
      autoAccept: true,
    });
    agent = await startAgent(server.url, auto.secret, join(work, 'agent'), { name: 'real-agent' });
    agentId = await waitFor('the agent enrolled', async () => {
      const r = await admin.ok<{ items: { id: string }[] }>('GET', '/api/v1/devices?filter=tags%3D%3Dreal');
      return r.items[0]?.id;
    });
    const cli = new Cli(join(work, 'cli'), join(work, 'cli', 'keys'));
    cli.ok(['login', '--server', server.url, '--user', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    cli.ok(['keys', 'init', '--no-passphrase', '--keys-dir', cli.keysDir]);
    await writeFile(join(work, 'config.json'), JSON.stringify({ files: {} }));
    for (const [version, body] of [
      ['1.0.0', 'v1'],
      ['1.1.0', 'v1.1'],
    ] as const) {
      await mkdir(join(work, 'src', 'assets'), { recursive: true });
      await writeFile(join(work, 'src', 'index.html'), `<h1>${body}</h1>\n`);
      await writeFile(
        join(work, 'src', 'assets', `app-${version}.js`),
        `console.log(${JSON.stringify(body)});\n`,
      );
      cli.ok([
        'release',
        'push',
        join(work, 'src'),
        '--app',
        'web',
        '--version',
        version,
        '--config-file',
        join(work, 'config.json'),
        '--keys-dir',
        cli.keysDir,
        '--json',
      ]);
    }
    cli.ok(['deploy', 'web@1.0.0', '--device', agentId, '--json']);
    // A process app that logs a numbered line every half second, for the log panel.
    await mkdir(join(work, 'ticker'), { recursive: true });
    await writeFile(
      join(work, 'ticker', 'tick.sh'),
      'i=0\nwhile true; do i=$((i+1)); echo "tick $i"; sleep 0.5; done\n',
    );
    cli.ok([
      'release',
      'push',
      join(work, 'ticker'),
      '--app',
      'ticker',
      '--version',
      '1.0.0',
      '--keys-dir',
      cli.keysDir,
      '--runtime',
      'process',
      '--json',
      '--',
      'sh',
      'tick.sh',
    ]);
    cli.ok(['deploy', 'ticker@1.0.0', '--device', agentId, '--json']);
    await waitFor('the agent committed web 1.0.0 and ticker 1.0.0', async () => {
      const r = await admin.ok<{ items: { phase: string | null }[] }>(
        'GET',
        `/api/v1/devices/${agentId}/apps`,
      );
      return r.items.length === 2 && r.items.every((a) => a.phase === 'committed');
    });
    browsing = await Browsing.launch();
  });

  after(async () => {
    agent?.kill('SIGTERM');
    await browsing?.close();
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Opens `path` signed in, waits for `ready`, checks axe, saves the screenshot. */
  async function visit(
    ctx: BrowserContext,
    path: string,
    ready: (p: Page) => Promise<unknown>,
    name: string,
    width: 'desktop' | 'phone',
  ) {
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) errors.push(m.text());
    });
    await page.goto(server.url + path);
    await ready(page).catch(async (e: unknown) => {
      // What the page showed instead, for the failure report.
      const text = await page
        .locator('main')
        .innerText()
        .catch(() => '(no main)');
      throw new Error(`${path} (${width}) not ready: ${String(e)}\npage text:\n${text.slice(0, 2000)}`);
    });
    const violations = await axe(page);
    assert.deepEqual(violations, [], `axe on ${path} (${width}):\n${describeViolations(violations)}`);
    await screenshot(page, name, width);
    assert.deepEqual(errors, [], `browser errors on ${path}`);
    return page;
  }

  const PAGES: { path: string; name: string; ready: (p: Page) => Promise<unknown> }[] = [
    { path: '/', name: 'overview', ready: (p) => p.getByText('total devices').waitFor() },
    { path: '/devices', name: 'devices', ready: (p) => p.getByRole('link', { name: 'sim-00' }).waitFor() },
    { path: '/releases', name: 'releases', ready: (p) => p.getByRole('link', { name: '1.1.0' }).waitFor() },
    {
      path: '/releases/web/1.1.0',
      name: 'release',
      ready: (p) => p.getByText('Files changed since 1.0.0').waitFor(),
    },
    {
      path: '/releases/web/diff?from=1.0.0&to=1.1.0',
      name: 'release-diff',
      ready: (p) => p.getByText(/fetches/).waitFor(),
    },
    {
      path: '/rollouts',
      name: 'rollouts',
      ready: (p) => p.getByRole('heading', { name: 'Rollouts' }).waitFor(),
    },
    {
      path: '/registration-keys',
      name: 'registration-keys',
      ready: (p) => p.getByRole('cell', { name: 'agents' }).waitFor(),
    },
    {
      path: '/tokens',
      name: 'tokens',
      ready: (p) => p.getByRole('cell', { name: 'web-e2e-admin' }).waitFor(),
    },
    { path: '/operators', name: 'operators', ready: (p) => p.getByRole('cell', { name: 'vera' }).waitFor() },
    { path: '/audit', name: 'audit', ready: (p) => p.getByText('user.create').first().waitFor() },
    { path: '/keys', name: 'keys', ready: (p) => p.getByRole('cell', { name: 'targets' }).waitFor() },
  ];

  void test('the login page passes axe at both widths; a wrong password is refused in place', async () => {
    for (const [width, viewport] of [
      ['desktop', DESKTOP],
      ['phone', PHONE],
    ] as const) {
      const ctx = await browsing.context(viewport);
      const page = await ctx.newPage();
      await page.goto(server.url + '/devices');
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      assert.deepEqual(await axe(page), []);
      await screenshot(page, 'login', width);
      await page.getByLabel('Username').fill('admin');
      await page.getByLabel('Password').fill('not-the-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'FLT_BAD_CREDENTIALS' }).waitFor();
      await ctx.close();
    }
  });

  void test('every page, signed in as admin, passes axe at desktop and phone width', async () => {
    for (const [width, viewport] of [
      ['desktop', DESKTOP],
      ['phone', PHONE],
    ] as const) {
      const ctx = await browsing.context(viewport);
      const login = await ctx.newPage();
      await signIn(login, server.url, 'admin', ADMIN_PASSWORD);
      await login.close();
      for (const p of PAGES) await (await visit(ctx, p.path, p.ready, p.name, width)).close();
      await (
        await visit(
          ctx,
          `/devices/${agentId}`,
          (p) => p.getByRole('cell', { name: '1.0.0' }).first().waitFor(),
          'device',
          width,
        )
      ).close();
      await ctx.close();
    }
  });

  void test('the overview counts devices; a feature the server lacks shows a note instead', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    const total = page.locator('.stat-total .stat-value');
    assert.equal(await total.textContent(), '13');
    // The release distribution chart (uPlot on a canvas, with its numbers in a hidden table).
    await page.getByRole('img', { name: 'Devices per release of web' }).waitFor();
    await page.locator('canvas').first().waitFor();
    // GET /api/v1/fleet/overview: one device runs web 1.0.0; 1.1.0 is released and runs nowhere yet.
    const cells = await page
      .locator('figure.chart', { has: page.getByRole('img', { name: 'Devices per release of web' }) })
      .locator('figcaption table td')
      .allTextContents();
    assert.deepEqual(cells, ['1.0.0', '1', '1.1.0', '0']);
    const rollouts = await admin.call('GET', '/api/v1/rollouts');
    if (rollouts.status === 404) {
      await page.getByRole('note').filter({ hasText: 'Rollouts is not available' }).waitFor();
    }
    await ctx.close();
  });

  void test('devices: the RSQL box, the builder, sorting and paging all ask the server', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    await page.goto(server.url + '/devices');
    await page.getByRole('heading', { name: '13 devices' }).waitFor();
    // The box.
    await page.getByLabel('RSQL filter').fill('tags==edge;arch==arm64');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('heading', { name: '2 devices' }).waitFor();
    // The builder writes the same language into the box.
    await page.getByLabel('Field of condition 1').fill('hostname');
    await page.getByLabel('Operator of condition 1').selectOption('=in=');
    await page.getByLabel('Value of condition 1').fill('sim-03, sim-05, sim-07');
    await page.getByRole('button', { name: 'Add condition' }).click();
    await page.getByLabel('Field of condition 2').fill('status');
    await page.getByLabel('Value of condition 2').selectOption('accepted');
    await page.getByRole('button', { name: 'Use this filter' }).click();
    assert.equal(
      await page.getByLabel('RSQL filter').inputValue(),
      'hostname=in=(sim-03,sim-05,sim-07);status==accepted',
    );
    await page.getByRole('heading', { name: '3 devices' }).waitFor();
    // Sorting by hostname, descending.
    await page.getByRole('button', { name: /Hostname/ }).click();
    await page.getByRole('button', { name: /Hostname/ }).click();
    await page.locator('th[aria-sort="descending"]').waitFor();
    const first = page.locator('tbody tr').first().getByRole('link');
    await waitFor('sorted descending', async () => (await first.textContent()) === 'sim-07');
    // Paging: 25 per page of 13 is one page; the pager says so.
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.getByText('1–13 of 13').waitFor();
    // Bulk: accept two pending devices and tag them.
    await page.getByLabel('RSQL filter').fill('status==pending');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('heading', { name: '4 devices' }).waitFor();
    await page.getByLabel('Select sim-08').check();
    await page.getByLabel('Select sim-09').check();
    await page.getByLabel('Tag for the selected devices').fill('promoted');
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.getByRole('status').filter({ hasText: 'tag: done for 2 devices' }).waitFor();
    const tagged = await admin.ok<{ total: number }>('GET', '/api/v1/devices?filter=tags%3D%3Dpromoted');
    assert.equal(tagged.total, 2);
    // Bulk deploy: a release assigned to the selected (accepted) devices.
    await page.getByLabel('RSQL filter').fill('hostname=in=(sim-00,sim-01)');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('heading', { name: '2 devices' }).waitFor();
    await page.getByLabel('Select every device on this page').check();
    await page.getByLabel('Release to deploy').selectOption('web@1.1.0');
    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.getByRole('status').filter({ hasText: 'deploy: web 1.1.0 assigned to 2 devices' }).waitFor();
    const status = await admin.ok<{ devices: { deviceId: string }[] }>(
      'GET',
      '/api/v1/deployments/status?app=web&version=1.1.0',
    );
    assert.deepEqual(status.devices.map((d) => d.deviceId).sort(), [simulated[0], simulated[1]].sort());
    await ctx.close();
  });

  void test('device detail: facts, the app and its release, tag editing', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    await page.goto(`${server.url}/devices/${agentId}`);
    await page.getByRole('cell', { name: 'web', exact: true }).waitFor();
    await page.getByText('committed').first().waitFor();
    await page.getByText(`flotilla tunnel ${agentId}`).waitFor();
    await page.getByLabel('New tag').fill('kiosk');
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.getByRole('button', { name: 'Remove tag kiosk' }).waitFor();
    const d = await admin.ok<{ tags: string[] }>('GET', `/api/v1/devices/${agentId}`);
    assert.ok(d.tags.includes('kiosk'));
    await ctx.close();
  });

  void test('release files: the tree from the objects API, directories expand by click or keyboard, with sizes', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    await page.goto(`${server.url}/releases/web/1.0.0`);
    const files = page.getByRole('list', { name: 'Release files' });
    // index.html is `<h1>v1</h1>\n`: 12 bytes, read from its file object.
    await files.getByRole('listitem').filter({ hasText: 'index.html' }).getByText('12 B').waitFor();
    const assets = files.getByRole('button', { name: 'assets/' });
    assert.equal(await assets.getAttribute('aria-expanded'), 'false');
    assert.equal(await files.getByText('app-1.0.0.js').count(), 0, 'a directory is read only when opened');
    // Keyboard: focus the directory and press Enter.
    await assets.focus();
    await page.keyboard.press('Enter');
    assert.equal(await assets.getAttribute('aria-expanded'), 'true');
    // `console.log("v1");\n` is 19 bytes (the innermost list item: `assets/`'s holds it too).
    await files.getByRole('listitem').filter({ hasText: 'app-1.0.0.js' }).last().getByText('19 B').waitFor();
    // A click closes it again.
    await assets.click();
    assert.equal(await files.getByText('app-1.0.0.js').count(), 0);
    const violations = await axe(page);
    assert.deepEqual(violations, [], describeViolations(violations));
    await screenshot(page, 'release-files', 'desktop');
    await ctx.close();
  });

  void test('device update history: read from the event log, newest first, with phase, release and time', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    // What the log holds for the agent, through the same public route the page reads.
    await page.goto(`${server.url}/devices/${agentId}`);
    const table = page.getByRole('table', { name: 'Update history' });
    await table.getByRole('row').filter({ hasText: 'committed' }).filter({ hasText: 'web 1.0.0' }).waitFor();
    const rows = table.locator('tbody tr');
    const count = await rows.count();
    assert.ok(count >= 2, `several phases of the two updates, got ${count}`);
    // Newest first: the times do not increase down the table.
    const times = await table
      .locator('tbody time')
      .evaluateAll((els) => els.map((e) => e.getAttribute('datetime') ?? ''));
    assert.equal(times.length, count);
    assert.deepEqual([...times].sort().reverse(), times);
    // The first update event the log holds (the bottom row) is not the commit.
    assert.notEqual(await rows.last().getByRole('cell').nth(1).innerText(), 'committed');
    // Only this device's update events: none of the simulated devices, no device.online.
    assert.equal(await table.getByText('online').count(), 0);
    await ctx.close();
  });

  void test('device logs: the panel shows the app log tail and follows it', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    await page.goto(`${server.url}/devices/${agentId}`);
    await page
      .getByRole('row', { name: /ticker/ })
      .getByRole('button', { name: 'Logs' })
      .click();
    const log = page.getByTestId('log-text');
    await log.filter({ hasText: /tick \d+/ }).waitFor();
    const last = async () =>
      Math.max(...[...(await log.innerText()).matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    const first = await last();
    await waitFor('a newer log line without a reload', async () => (await last()) > first);
    const violations = await axe(page);
    assert.deepEqual(violations, [], describeViolations(violations));
    await screenshot(page, 'device-logs', 'desktop');
    await ctx.close();
  });

  void test('registration keys and API tokens: created in the page, the secret shown once with its command', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    await page.goto(`${server.url}/registration-keys`);
    await page.getByLabel('Name').fill('from-the-browser');
    await page.getByLabel('Tags').fill('kiosk, arm64');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = page.getByLabel('Registration key "from-the-browser"');
    await secret.waitFor();
    const key = (await secret.innerText()).trim();
    await page
      .getByText(`curl -fsSL ${server.url}/install.sh | sh -s -- --registration-key ${key}`)
      .waitFor();
    await page.getByRole('cell', { name: 'from-the-browser' }).waitFor();
    // The secret works: a device enrolls with it and gets the key's tags.
    const d = await enrollDevice(server.url, key, { facts: { hostname: 'via-ui-key' } });
    const dev = await admin.ok<{ tags: string[] }>('GET', `/api/v1/devices/${d.deviceId}`);
    assert.deepEqual([...dev.tags].sort(), ['arm64', 'kiosk']);
    await admin.ok('POST', `/api/v1/devices/${d.deviceId}/reject`, {});
    // Reload: the secret is gone for good.
    await page.reload();
    await page.getByRole('cell', { name: 'from-the-browser' }).waitFor();
    assert.equal(await page.getByText(key).count(), 0);
    // An API token made in the page authenticates the API.
    await page.goto(`${server.url}/tokens`);
    await page.getByLabel('Name').fill('ci-from-ui');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = (await page.getByLabel('API token "ci-from-ui"').innerText()).trim();
    const me = await fetch(`${server.url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(me.status, 200);
    await ctx.close();
  });

  void test('a viewer sees no mutating control, and the API refuses the viewer anyway', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, VIEWER.username, VIEWER.password);
    await page.goto(server.url + '/devices');
    await page.getByRole('link', { name: 'sim-00' }).waitFor();
    for (const name of ['Accept', 'Reject', 'Add tag', 'Remove tag', 'Deploy'])
      assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `no ${name} button`);
    assert.equal(await page.getByRole('group', { name: /Bulk actions/ }).count(), 0);
    await page.goto(`${server.url}/devices/${simulated[9]}`);
    await page.getByRole('heading', { name: /sim-09/ }).waitFor();
    assert.equal(
      await page.getByRole('button', { name: /Accept|Reject|Revoke|Add tag|Remove tag/ }).count(),
      0,
    );
    await page.goto(`${server.url}/devices/${agentId}`);
    await page.getByRole('cell', { name: 'web', exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: /Restart|Stop|Start|Roll back/ }).count(), 0);
    // Admin-only pages are not in the viewer's menu.
    assert.equal(await page.getByRole('link', { name: 'Operators' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Audit log' }).count(), 0);
    await page.goto(`${server.url}/registration-keys`);
    await page.getByText('visible to deployers and admins').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Create key' }).count(), 0);
    await page.goto(`${server.url}/releases`);
    await page.getByRole('link', { name: '1.1.0' }).waitFor();
    await screenshot(page, 'viewer-releases', 'desktop');
    // The session cookie itself cannot mutate: the server answers 403 FLT_FORBIDDEN.
    const refused = await page.evaluate(async (id) => {
      const r = await fetch(`/api/v1/devices/${id}/accept`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      return { status: r.status, body: (await r.json()) as { error: { code: string } } };
    }, simulated[10]);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'FLT_FORBIDDEN');
    const viewerApi = await Api.login(server.url, VIEWER.username, VIEWER.password);
    const r = await viewerApi.call<{ error: { code: string } }>(
      'POST',
      `/api/v1/devices/${simulated[10]}/tags`,
      { add: ['x'] },
    );
    assert.equal(r.status, 403);
    await ctx.close();
  });

  void test('sign out ends the session: the dashboard shows the login page and the API says 401', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
    assert.equal(status, 401);
    // A cookie write from a form (not JSON) is refused as CSRF, whatever the session.
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    const csrf = await page.evaluate(async () => {
      const r = await fetch('/api/v1/tokens', {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: '{"name":"x"}',
      });
      return r.status;
    });
    assert.equal(csrf, 403);
    await ctx.close();
  });

  void test('serving: hashed assets are immutable, the shell revalidates, client routes fall back, the API keeps its 404', async () => {
    const shell = await fetch(`${server.url}/devices/some-id`);
    assert.equal(shell.status, 200);
    assert.equal(shell.headers.get('cache-control'), 'no-cache');
    assert.match(shell.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await shell.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, 'index.html names its script');
    const js = await fetch(server.url + asset);
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const again = await fetch(server.url + asset, {
      headers: { 'if-none-match': js.headers.get('etag') ?? '' },
    });
    assert.equal(again.status, 304);
    const versioned = await fetch(`${server.url}/releases/web/1.1.0`);
    assert.equal(versioned.status, 200, 'a route with a dot in it is a route, not a file');
    assert.match(versioned.headers.get('content-type') ?? '', /text\/html/);
    assert.equal((await fetch(`${server.url}/favicon.png`)).status, 404);
    const api = await fetch(`${server.url}/api/v1/no-such-route`);
    assert.equal(api.status, 404);
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'FLT_ROUTE_NOT_FOUND');
    assert.equal((await fetch(`${server.url}/assets/missing.js`)).status, 404);
    assert.equal((await fetch(`${server.url}/build-report.json`)).status, 404);
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    assert.ok(
      !Object.keys(doc.paths).some((p) => p === '/' || p.startsWith('/*')),
      'the SPA is not in the API document',
    );
  });
});

void describe('dashboard with 10,000 devices', { skip: missing ?? false }, () => {
  const N = 10_000;
  let server: WebServer;
  let browsing: Browsing;

  before(async () => {
    server = await WebServer.start();
    // Enrolling 10,000 devices over HTTP takes minutes (bench/README.md: ~90/s); they are written
    // through the server's own database layer instead, into the running server's SQLite file.
    const opened = await openDatabase(
      `sqlite:${join(server.dataDir, 'flotilla.db')}`,
      pino({ level: 'silent' }),
    );
    try {
      const at = new Date().toISOString();
      for (let start = 0; start < N; start += 500) {
        const ids = Array.from({ length: Math.min(500, N - start) }, (_, k) => start + k);
        await opened.db.transaction().execute(async (tx) => {
          await tx
            .insertInto('devices')
            .values(
              ids.map((i) => ({
                id: `bulk${String(i).padStart(5, '0')}`,
                public_key: `pk-bulk-${i}`,
                status: 'accepted',
                hostname: `bulk-${String(i).padStart(5, '0')}`,
                registration_key_id: null,
                enrolled_at: at,
                status_changed_at: at,
                status_reason: null,
                last_seen_at: null,
                agent_version: null,
                state_version: 0,
              })),
            )
            .execute();
          await tx
            .insertInto('device_tags')
            .values(
              ids.map((i) => ({
                device_id: `bulk${String(i).padStart(5, '0')}`,
                tag: i % 2 ? 'odd' : 'even',
              })),
            )
            .execute();
        });
      }
    } finally {
      await opened.close();
    }
    browsing = await Browsing.launch();
  });

  after(async () => {
    await browsing?.close();
    await server?.close();
  });

  void test('the devices page shows the first page, pages forward and filters with RSQL', async () => {
    const ctx = await browsing.context();
    const page = await ctx.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
    await page.goto(server.url + '/devices');
    await page
      .getByText(`1–50 of ${N}`)
      .waitFor()
      .catch(async (e: unknown) => {
        throw new Error(
          `${String(e)}\npage text:\n${(await page.locator('main').innerText()).slice(0, 1500)}`,
        );
      });
    assert.equal(
      await page.locator('tbody tr').count(),
      50,
      'one page of rows (50 by default), not the fleet',
    );
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText(`51–100 of ${N}`).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 50);
    // Sorted by hostname, the second page starts at the 51st.
    await page.getByRole('button', { name: /Hostname/ }).click();
    await page.locator('th[aria-sort="ascending"]').waitFor();
    await page.getByText(`1–50 of ${N}`).waitFor();
    await page.getByRole('link', { name: 'bulk-00000' }).waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('link', { name: 'bulk-00050' }).waitFor();
    // RSQL, answered by the server over the whole fleet.
    await page.getByLabel('RSQL filter').fill('tags==odd');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText(`1–50 of ${N / 2}`).waitFor();
    await page.getByLabel('RSQL filter').fill('hostname=in=(bulk-00042,bulk-09999)');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('1–2 of 2').waitFor();
    assert.deepEqual((await page.locator('tbody tr').getByRole('link').allInnerTexts()).sort(), [
      'bulk-00042',
      'bulk-09999',
    ]);
    await ctx.close();
  });
});
