/**
 * Rollouts and the live event stream in the browser: create a rollout with the wizard and watch it
 * reach 100 %, pause and resume it, follow a device's "why", and watch a log stream. These need the
 * rollout engine and the event stream (`/api/v1/rollouts`, `/api/v1/events`); on a server without
 * them every test here skips itself and says why.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import type { Page } from 'playwright-core';
import {
  ADMIN_PASSWORD,
  Api,
  Browsing,
  Cli,
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

void describe('rollouts and live events in Chromium', { skip: missing ?? false }, () => {
  let server: WebServer;
  let admin: Api;
  let browsing: Browsing | null = null;
  let work = '';
  const agents: ChildProcess[] = [];
  const agentIds: string[] = [];
  /** Set when the server has no rollout engine: every test skips with this message. */
  let unavailable: string | null = null;

  before(async () => {
    server = await WebServer.start();
    admin = await Api.login(server.url, 'admin', ADMIN_PASSWORD);
    const probe = await admin.call('GET', '/api/v1/rollouts');
    if (probe.status === 404) {
      unavailable =
        'GET /api/v1/rollouts answers 404: this server has no rollout engine yet, so the rollout browser tests skip';
      return;
    }
    work = await mkdtemp(join(tmpdir(), 'flt-web-rollout-'));
    const key = await admin.ok<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'rollout',
      tags: ['ro'],
      autoAccept: true,
    });
    for (let i = 0; i < 2; i++)
      agents.push(await startAgent(server.url, key.secret, join(work, `agent-${i}`), { name: `ro-${i}` }));
    await waitFor('two agents enrolled', async () => {
      const r = await admin.ok<{ items: { id: string }[] }>('GET', '/api/v1/devices?filter=tags%3D%3Dro');
      if (r.items.length < 2) return false;
      agentIds.push(...r.items.map((d) => d.id));
      return true;
    });
    const cli = new Cli(join(work, 'cli'), join(work, 'cli', 'keys'));
    cli.ok(['login', '--server', server.url, '--user', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    cli.ok(['keys', 'init', '--no-passphrase', '--keys-dir', cli.keysDir]);
    await mkdir(join(work, 'src'), { recursive: true });
    // A process app that logs a numbered line every half second.
    await writeFile(
      join(work, 'src', 'tick.sh'),
      'i=0\nwhile true; do i=$((i+1)); echo "tick $i"; sleep 0.5; done\n',
    );
    for (const version of ['1.0.0', '1.1.0', '1.2.0']) {
      await writeFile(join(work, 'src', 'VERSION'), version + '\n');
      cli.ok([
        'release',
        'push',
        join(work, 'src'),
        '--app',
        'ticker',
        '--version',
        version,
        '--keys-dir',
        cli.keysDir,
        '--runtime',
        'process',
        '--json',
        '--',
        'sh',
        'tick.sh',
      ]);
    }
    browsing = await Browsing.launch();
  });

  after(async () => {
    for (const a of agents) a.kill('SIGTERM');
    await browsing?.close();
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  function skipped(t: TestContext): boolean {
    if (unavailable === null) return false;
    t.skip(unavailable);
    return true;
  }

  async function page(): Promise<Page> {
    const ctx = await browsing!.context();
    const p = await ctx.newPage();
    await signIn(p, server.url, 'admin', ADMIN_PASSWORD);
    return p;
  }

  async function checkAxe(p: Page, name: string) {
    const v = await axe(p);
    assert.deepEqual(v, [], `axe on ${name}:\n${describeViolations(v)}`);
    await screenshot(p, name, 'desktop');
  }

  async function createRollout(p: Page, release: string, waves: string): Promise<string> {
    await p.goto(server.url + '/rollouts/new');
    await p.getByLabel('Release').selectOption(release);
    await p.getByLabel('RSQL filter').fill('tags==ro');
    await p.getByLabel(/^Waves/).fill(waves);
    await p.getByText('2 devices match').waitFor();
    await checkAxe(p, 'rollout-new');
    await p.getByRole('button', { name: 'Start rollout' }).click();
    await p.waitForURL((u) => /^\/rollouts\/[^/]+$/.test(u.pathname) && u.pathname !== '/rollouts/new');
    return decodeURIComponent(new URL(p.url()).pathname.split('/').pop()!);
  }

  void test('the wizard previews the split, creates a rollout, and its page goes live to 100 %', async (t) => {
    if (skipped(t)) return;
    const p = await page();
    await createRollout(p, 'ticker@1.0.0', '50%, 100%');
    // No reload: the page follows the event stream.
    await p.getByTestId('rollout-progress').filter({ hasText: '100 %' }).waitFor({ timeout: 120_000 });
    await checkAxe(p, 'rollout');
    await p.context().close();
  });

  void test('pause and resume a rollout from its page', async (t) => {
    if (skipped(t)) return;
    const p = await page();
    // Waves are cumulative (docs/rollouts.md): one device first, then the rest.
    await createRollout(p, 'ticker@1.1.0', '1, 100%');
    await p.getByRole('button', { name: 'Pause' }).click();
    await p.getByRole('heading').filter({ hasText: 'paused' }).waitFor();
    await p.getByRole('button', { name: 'Resume' }).click();
    await p.getByTestId('rollout-progress').filter({ hasText: '100 %' }).waitFor({ timeout: 120_000 });
    await p.context().close();
  });

  void test('why: one device of a rollout explains its state', async (t) => {
    if (skipped(t)) return;
    const p = await page();
    const id = await createRollout(p, 'ticker@1.2.0', '100%');
    await p.getByLabel('Device id').fill(agentIds[0]!);
    await p.getByRole('button', { name: 'Explain' }).click();
    const why = p.getByTestId('why');
    await why.waitFor();
    assert.match(await why.innerText(), new RegExp(agentIds[0]!));
    const api = await admin.ok<{ deviceId: string }>(
      'GET',
      `/api/v1/rollouts/${id}/devices/${agentIds[0]}/why`,
    );
    assert.equal(api.deviceId, agentIds[0]);
    await p.context().close();
  });

  void test('a device page streams its app log live', async (t) => {
    if (skipped(t)) return;
    const p = await page();
    await waitFor(
      'ticker running',
      async () => {
        const r = await admin.ok<{ items: { app: string; phase: string | null }[] }>(
          'GET',
          `/api/v1/devices/${agentIds[1]}/apps`,
        );
        return r.items.some((a) => a.app === 'ticker' && a.phase === 'committed');
      },
      120_000,
    );
    await p.goto(`${server.url}/devices/${agentIds[1]}`);
    await p.getByRole('button', { name: 'Logs' }).click();
    const log = p.getByTestId('log-text');
    await log.filter({ hasText: /tick \d+/ }).waitFor();
    const first = Math.max(...[...(await log.innerText()).matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    // Following: newer lines arrive without touching the page.
    await waitFor('a newer log line', async () => {
      const now = Math.max(...[...(await log.innerText()).matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
      return now > first;
    });
    await checkAxe(p, 'device-logs');
    await p.context().close();
  });

  void test('the overview lists live events as they happen', async (t) => {
    if (skipped(t)) return;
    const p = await page();
    await p.getByRole('status').filter({ hasText: 'live' }).waitFor();
    await admin.ok('POST', `/api/v1/devices/${agentIds[0]}/tags`, { add: ['seen-live'] });
    await p.locator('ol.events li').first().waitFor({ timeout: 30_000 });
    await p.context().close();
  });
});
