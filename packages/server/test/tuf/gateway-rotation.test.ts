/**
 * The gateway role across a change of the server's online gateway key (docs/gateway.md "Rotating
 * the gateway key"): until the operator delegates to the new key, the server refuses to sign with
 * it (FLT_TUF_KEY_MISMATCH) and keeps serving what the old key signed; `keys delegate-gateway`
 * (targets naming the new key) makes the server re-sign gateway.json with it at once, keeping the
 * releases still delegated and dropping those of apps no longer delegated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  serializeMetadata,
  signMetadata,
  tufKeyFromPublicKey,
  withGatewayDelegation,
} from '@flotilla/node-kit';
import { isFlotillaError } from '@flotilla/protocol';
import { ImageRepository, expiryPolicy, memoryOnlineKeys } from '../../src/tuf/index.js';
import { DAY_MS, initialised, release } from './fixture.js';
import type { Fixture } from './fixture.js';

async function delegate(f: Fixture, image: ImageRepository, apps: string[]): Promise<void> {
  const md = withGatewayDelegation(
    await image.targets(),
    tufKeyFromPublicKey(image.onlinePublicKeys().gateway),
    apps,
    new Date(f.clock.now().getTime() + 90 * DAY_MS),
  );
  await signMetadata(md, [f.targetsKey]);
  await image.submitTargets(serializeMetadata(md));
}

const code = (expected: string) => (e: unknown) => isFlotillaError(e) && e.code === expected;

void test('a new gateway key signs nothing until delegated to; delegating re-signs gateway.json with it', async () => {
  const f = await initialised();
  const imgs1 = release('imgs', '1', 'b');
  const tools1 = release('tools', '1', 'c');
  await assert.rejects(f.image.signGatewayTarget(imgs1), code('FLT_TUF_NOT_DELEGATED'));
  await delegate(f, f.image, ['imgs', 'tools']);
  await f.image.signGatewayTarget(imgs1);
  await f.image.signGatewayTarget(tools1);
  assert.ok(await f.image.target(imgs1.path));

  // The server restarts with a new gateway key (the old key file was deleted or lost).
  const keys = { ...f.keys, gateway: memoryOnlineKeys().gateway };
  const rotated = new ImageRepository({ store: f.store, keys, policy: expiryPolicy(), clock: f.clock });
  await assert.rejects(rotated.signGatewayTarget(release('imgs', '2', 'd')), code('FLT_TUF_KEY_MISMATCH'));
  assert.ok(await rotated.target(imgs1.path), 'what the old key signed is still served meanwhile');
  // Nor does the refresher re-sign with a key the delegation does not name.
  f.clock.advance(6 * DAY_MS);
  await rotated.refreshOnline();
  assert.equal((await rotated.gatewayTargets())?.signatures[keys.gateway.key.keyID], undefined);

  // The operator delegates again (to the new key), dropping tools.
  await delegate(f, rotated, ['imgs']);
  const gateway = await rotated.gatewayTargets();
  assert.ok(gateway?.signatures[keys.gateway.key.keyID], 'gateway.json re-signed with the new key');
  assert.ok(await rotated.target(imgs1.path), 'imgs/1 is kept');
  assert.equal(await rotated.target(tools1.path), undefined, 'tools is no longer delegated');
  await rotated.signGatewayTarget(release('imgs', '2', 'd'));
  assert.ok(await rotated.target('imgs/2/' + 'd'.repeat(64)));
});

void test('targets whose delegation is malformed or names another key are refused at upload', async () => {
  const f = await initialised();
  const other = memoryOnlineKeys().gateway;
  const md = withGatewayDelegation(
    await f.image.targets(),
    other.key,
    ['imgs'],
    new Date(f.clock.now().getTime() + DAY_MS),
  );
  await signMetadata(md, [f.targetsKey]);
  await assert.rejects(f.image.submitTargets(serializeMetadata(md)), code('FLT_TUF_KEY_MISMATCH'));
  const json = md.toJSON() as { signed: { version: number; delegations: { roles: { paths: string[] }[] } } };
  json.signed.delegations.roles[0]!.paths = ['imgs/**'];
  const { Metadata, MetadataKind } = await import('@tufjs/models');
  const bad = Metadata.fromJSON(MetadataKind.Targets, json);
  bad.signatures = {};
  await signMetadata(bad, [f.targetsKey]);
  await assert.rejects(f.image.submitTargets(serializeMetadata(bad)), code('FLT_TUF_METADATA_INVALID'));
});
