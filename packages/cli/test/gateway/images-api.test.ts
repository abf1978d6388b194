/**
 * The image API and CLI against a real server with the gateway plugged in through the server's
 * extension point: pull with progress, a second pull answering at once, ls/show/lookup/rm with
 * --json, private images invisible (404, as if missing) to anyone outside their lists, per-platform
 * admins, every action audited, the routes in the OpenAPI document.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEntry, Image, ImageLookupResponse, PullImageResponse } from '@flotilla/protocol';
import { resolveServerConfig, startServer } from '@flotilla/server';
import type { RunningServer } from '@flotilla/server';
import { readCredentials } from '../../src/config/credentials.js';
import { gatewayExtension } from '../../src/gateway/extension.js';
import { cli, json } from '../helpers/memory-io.js';
import type { CliResult } from '../helpers/memory-io.js';
import { fixtureImporter } from './fixture-importer.js';
import { tempRoot, writeGatewayConfig } from './helpers.js';

const PASSWORD = 'gateway-test-password-1';

void describe('images API and CLI', () => {
  let root = '';
  let server: RunningServer;
  let platformDir = '';
  const as = (user: string, argv: string[], stdin?: string): Promise<CliResult> =>
    cli(argv, { env: { FLOTILLA_CONFIG_DIR: join(root, 'cli', user), FLOTILLA_SERVER: server.url }, stdin });

  before(async () => {
    root = await tempRoot('flt-gw-api-');
    platformDir = join(root, 'cluster-images');
    const configFile = await writeGatewayConfig(
      root,
      `locations:\n  fixture:\n    url: http://127.0.0.1:9\ncacheDir: ${join(root, 'cache')}\n` +
        `platforms:\n  cluster:\n    admins: [carol]\n    access: { type: local, imageDir: ${platformDir} }\n` +
        `groups:\n  physics: [dave]\n`,
    );
    const config = resolveServerConfig({
      flags: { dataDir: join(root, 'server'), listen: '127.0.0.1:0', logLevel: 'silent' },
      env: { FLOTILLA_ADMIN_PASSWORD: PASSWORD },
    });
    server = await startServer(config, {
      extensions: [gatewayExtension({ configFile, importer: fixtureImporter() })],
    });
    assert.equal((await as('admin', ['login', '--user', 'admin', '--password-stdin'], PASSWORD)).code, 0);
    for (const [user, role] of [
      ['carol', 'viewer'],
      ['bob', 'viewer'],
      ['dave', 'viewer'],
      ['erin', 'deployer'],
    ] as const) {
      const made = await as(
        'admin',
        ['users', 'create', '--username', user, '--role', role, '--password-stdin'],
        PASSWORD,
      );
      assert.equal(made.code, 0, made.stderr);
      const login = await as(user, ['login', '--user', user, '--password-stdin'], PASSWORD);
      assert.equal(login.code, 0, login.stderr);
    }
  });
  after(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  void test('pull shows progress and ends ready; a second pull answers at once', async () => {
    const pulled = await as('admin', ['images', 'pull', 'team/tool:1', '--platform', 'cluster', '--json']);
    assert.equal(pulled.code, 0, pulled.stderr);
    const first = json<{ image: Image }>(pulled);
    assert.equal(first.image.status, 'ready');
    assert.equal(first.image.image, 'fixture/team/tool:1');
    assert.match(pulled.stderr, /100% done/);
    assert.ok(existsSync(first.image.path ?? ''));

    const again = await as('admin', ['images', 'pull', 'team/tool:1', '--platform', 'cluster', '--json']);
    assert.equal(again.code, 0, again.stderr);
    const second = json<PullImageResponse>(again);
    assert.equal(second.job, null, 'no new job for a converted image');
    assert.equal(second.image.id, first.image.id);

    const ls = json<{ items: Image[] }>(await as('bob', ['images', 'ls', '--json']));
    assert.equal(ls.items.length, 1);
    assert.ok(ls.items[0]?.expiresAt, 'ls shows when it expires');
    const text = await as('bob', ['images', 'ls']);
    assert.match(text.stdout, /fixture\/team\/tool:1\s+amd64\s+ready/);

    const found = json<ImageLookupResponse>(
      await as('bob', ['images', 'lookup', 'team/tool:1', '--platform', 'cluster', '--json']),
    );
    assert.equal(found.id, first.image.id);
    assert.equal(found.path, join(platformDir, `${first.image.id ?? ''}.squashfs`));
    const shown = json<Image>(
      await as('bob', ['images', 'show', 'fixture/team/tool:1', '--platform', 'cluster', '--json']),
    );
    assert.equal(shown.status, 'ready');
  });

  void test('concurrent pulls of one image share one job', async () => {
    const token = await tokenOf('admin');
    const answers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const res = await fetch(`${server.url}/api/v1/images/pull`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ image: 'team/shared:1', platform: 'cluster' }),
        });
        return (await res.json()) as PullImageResponse;
      }),
    );
    // A pull answered after the import finished gets the ready image (no job); all others one job.
    const jobs = new Set(answers.flatMap((a) => (a.job ? [a.job.id] : [])));
    assert.equal(jobs.size, 1, `one job for all: ${[...jobs].join(', ')}`);
    const pulled = await as('admin', ['images', 'pull', 'team/shared:1', '--platform', 'cluster', '--json']);
    assert.equal(json<{ image: Image }>(pulled).image.status, 'ready');
  });

  void test('a private image is invisible to anyone outside its lists, as if it did not exist', async () => {
    const pulled = await as('erin', [
      'images',
      'pull',
      'team/secret:1',
      '--private',
      '--group',
      'physics',
      '--json',
    ]);
    assert.equal(pulled.code, 0, pulled.stderr);
    const secret = json<{ image: Image }>(pulled).image;
    assert.equal(secret.private, true);

    const hidden = await as('bob', ['images', 'lookup', 'team/secret:1']);
    const missing = await as('bob', ['images', 'lookup', 'team/nothing:1']);
    assert.equal(hidden.code, 1);
    assert.match(hidden.stderr, /FLT_IMAGE_NOT_FOUND/);
    assert.equal(
      hidden.stderr.replace('secret', 'X'),
      missing.stderr.replace('nothing', 'X'),
      'the same answer as for an image that does not exist',
    );
    const bobList = json<{ items: Image[] }>(await as('bob', ['images', 'ls', '--json']));
    assert.ok(!bobList.items.some((i) => i.image.includes('secret')));
    assert.equal((await as('bob', ['images', 'show', 'team/secret:1'])).code, 1);

    const raw = await fetch(`${server.url}/api/v1/images/lookup?image=team/secret:1`, {
      headers: { authorization: `Bearer ${await tokenOf('bob')}` },
    });
    assert.equal(raw.status, 404);

    assert.equal(
      json<ImageLookupResponse>(await as('dave', ['images', 'lookup', 'team/secret:1', '--json'])).id,
      secret.id,
    );
    assert.equal(
      json<ImageLookupResponse>(await as('carol', ['images', 'lookup', 'team/secret:1', '--json'])).id,
      secret.id,
    );
    assert.equal(
      json<ImageLookupResponse>(await as('erin', ['images', 'lookup', 'team/secret:1', '--json'])).id,
      secret.id,
    );
  });

  void test('platform admins may pull and remove; others may not; every action is audited', async () => {
    const bobPull = await as('bob', ['images', 'pull', 'team/other:1']);
    assert.equal(bobPull.code, 1);
    assert.match(bobPull.stderr, /FLT_FORBIDDEN/);
    const carolPull = await as('carol', ['images', 'pull', 'team/other:1', '--json']);
    assert.equal(carolPull.code, 0, carolPull.stderr);

    const bobRm = await as('bob', ['images', 'rm', 'team/tool:1']);
    assert.equal(bobRm.code, 1);
    assert.match(bobRm.stderr, /FLT_FORBIDDEN/);
    const tool = json<Image>(await as('carol', ['images', 'show', 'team/tool:1', '--json']));
    const removed = await as('carol', ['images', 'rm', 'team/tool:1', '--json']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(existsSync(tool.path ?? ''), false, 'removed from the platform');
    assert.equal((await as('carol', ['images', 'lookup', 'team/tool:1'])).code, 1);

    const audit = json<{ items: AuditEntry[] }>(
      await as('admin', ['audit', 'ls', '--json', '--limit', '200']),
    );
    const actions = new Set(audit.items.map((e) => e.action));
    for (const a of ['image.pull', 'image.ready', 'image.lookup', 'image.remove'])
      assert.ok(actions.has(a), `${a} audited`);
  });

  void test('the image routes are in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    for (const p of [
      '/api/v1/images',
      '/api/v1/images/pull',
      '/api/v1/images/lookup',
      '/api/v1/images/show',
      '/api/v1/images/jobs/{id}',
    ])
      assert.ok(p in doc.paths, `${p} documented`);
  });

  async function tokenOf(user: string): Promise<string> {
    return (await readCredentials(join(root, 'cli', user)))?.token ?? '';
  }
});
