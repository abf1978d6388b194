/**
 * The server's side of the gateway's `fleet` platforms (ExtensionHost.fleet), on both databases: a
 * tree built into the server's store through `objects` is published as a release signed by the
 * gateway role and deployed to the devices a filter selects; refused before anything is deployed
 * when the app is not delegated; withdrawing takes the release back from the devices still
 * assigned it and out of the gateway role.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  serializeMetadata,
  signMetadata,
  tufKeyFromPublicKey,
  withGatewayDelegation,
} from '@flotilla/node-kit';
import { isFlotillaError, TufRoutes } from '@flotilla/protocol';
import { buildTree } from '@flotilla/store';
import type { ExtensionHost } from '../../src/index.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { initTrust } from '../releases/signing.js';

async function tree(host: ExtensionHost, content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-fleet-tree-'));
  try {
    await writeFile(join(dir, 'version'), content);
    return (await buildTree(dir, { sink: host.fleet.objects })).root;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

forEachDialect((dialect) => {
  void describe(`gateway fleet (${dialect})`, () => {
    void test('publish, deploy and withdraw through the extension host', async (t) => {
      let host: ExtensionHost | undefined;
      const app = await createTestApp({
        dialect,
        extensions: [
          {
            name: 'capture',
            register: (_app, h) => {
              host = h;
              return Promise.resolve();
            },
          },
        ],
      });
      t.after(() => app.close());
      assert.ok(host);
      const fleet = host.fleet;
      const keys = await initTrust(app);
      const inPlatform = await acceptedDevice(app, { tags: ['cluster'] });
      const outside = await acceptedDevice(app, { tags: ['other'] });
      const actor = { userId: 'u1', username: 'carol' };

      const root1 = await tree(host, 'v1\n');
      await assert.rejects(
        fleet.publish({ app: 'imgs', version: 'v1-a', rootObject: root1, filter: 'tags==cluster', actor }),
        (e: unknown) => isFlotillaError(e) && e.code === 'FLT_TUF_NOT_DELEGATED',
      );

      const online = await app.app.inject({
        method: 'GET',
        url: TufRoutes.onlineKeys,
        headers: bearer(app.adminToken),
      });
      const md = withGatewayDelegation(
        undefined,
        tufKeyFromPublicKey(online.json<{ gateway: string }>().gateway),
        ['imgs'],
        new Date(Date.now() + 86_400_000),
      );
      await signMetadata(md, [keys.targets]);
      const submitted = await app.app.inject({
        method: 'POST',
        url: TufRoutes.targets,
        headers: { ...bearer(app.adminToken), 'content-type': 'application/json' },
        payload: serializeMetadata(md),
      });
      assert.equal(submitted.statusCode, 200, submitted.body);

      const v1 = await fleet.publish({
        app: 'imgs',
        version: 'v1-a',
        rootObject: root1,
        filter: 'tags==cluster',
        actor,
      });
      assert.equal(v1.devices, 1);
      const apps = async (id: string) =>
        (
          await app.app.inject({
            method: 'GET',
            url: `/api/v1/devices/${id}/apps`,
            headers: bearer(app.adminToken),
          })
        ).json<{ items: { app: string; desired: string | null }[] }>().items;
      assert.equal((await apps(inPlatform.id))[0]?.desired, v1.targetPath);
      assert.deepEqual(await apps(outside.id), []);
      // Published again (a retried job): same release, nothing breaks.
      assert.equal(
        (
          await fleet.publish({
            app: 'imgs',
            version: 'v1-a',
            rootObject: root1,
            filter: 'tags==cluster',
            actor,
          })
        ).targetPath,
        v1.targetPath,
      );

      await fleet.withdraw({ app: 'imgs', version: 'v1-a', actor });
      assert.deepEqual(await apps(inPlatform.id), [], 'the device is no longer assigned it');
      const release = await app.app.inject({
        method: 'GET',
        url: '/api/v1/releases/imgs/v1-a',
        headers: bearer(app.adminToken),
      });
      assert.equal(release.json<{ signed: boolean }>().signed, false);
      const target = await app.app.inject({
        method: 'GET',
        url: `/tuf/image/targets/imgs/v1-a/${root1}`,
        headers: bearer(app.adminToken),
      });
      assert.equal(target.statusCode, 404, 'no longer a target of the image repository');
    });
  });
});
