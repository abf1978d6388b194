/**
 * Delegated signing by the server's online gateway role (docs/releases.md "Delegated signing"),
 * through real HTTP: without the offline delegation the server refuses to sign; with it, releases
 * of the delegated app are signed online and tuf-js's Updater (what the agent runs) resolves them
 * through the delegation. A compromised server that signs, with the real online gateway key, a
 * release outside the delegation, or a gateway.json signed by another key, is refused by tuf-js.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import {
  generateEd25519,
  memorySigner,
  newTargets,
  readKeyFile,
  releaseTarget,
  serializeMetadata,
  signMetadata,
  tufKeyFromPublicKey,
  withGatewayDelegation,
} from '@flotilla/node-kit';
import { ReleaseRoutes, TufRoutes, routePath } from '@flotilla/protocol';
import type { GatewaySignatureResponse, Release } from '@flotilla/protocol';
import type { TargetFile } from '@tufjs/models';
import { bearer, createTestApp } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { publish, treeOf } from '../objects/push.js';
import { initTrust, signReleases } from '../releases/signing.js';
import type { OfflineKeys } from '../releases/signing.js';
import { expiryPolicy, FsMetadataStore, loadOrCreateOnlineKeys } from '../../src/tuf/index.js';
import { publishSnapshotAndTimestamp } from '../../src/tuf/online-publisher.js';

class HeaderFetcher extends BaseFetcher {
  constructor(private readonly headers: Record<string, string>) {
    super();
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await fetch(url, { headers: this.headers, signal: AbortSignal.timeout(30_000) });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

const YEAR_MS = 365 * 86_400_000;
let t: TestApp;
let base: string;
let keys: OfflineKeys;
let web: Release;
let imgs: Release;
let deviceToken: string;
let trustedRoot: Buffer;
const rootLength = new Map<string, number>();
const dirs: string[] = [];

before(async () => {
  t = await createTestApp({ dialect: 'sqlite' });
  const webTree = await treeOf({ 'index.html': '<h1>offline signed</h1>' });
  web = await publish(t, webTree, 'web', '1.0.0');
  rootLength.set(web.rootObject, (await webTree.store.getObject(webTree.root)).length);
  const imgTree = await treeOf({ 'etc/os-release': 'ID=test\n', 'bin/tool': '#!/bin/sh\necho hi\n' });
  imgs = await publish(t, imgTree, 'imgs', '1-abc');
  rootLength.set(imgs.rootObject, (await imgTree.store.getObject(imgTree.root)).length);
  keys = await initTrust(t);
  await signReleases(t, keys, [web], (r) => rootLength.get(r.rootObject) ?? 0);
  deviceToken = (await acceptedDevice(t)).token;
  const root = await t.app.inject({
    method: 'GET',
    url: '/tuf/image/1.root.json',
    headers: bearer(t.adminToken),
  });
  trustedRoot = root.rawPayload;
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
after(async () => {
  await t.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function http<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...bearer(t.adminToken),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : null) as T };
}

const signPath = (r: Release) =>
  routePath(ReleaseRoutes.gatewaySignature, { app: r.app, version: r.version });

/** A fresh tuf-js client trusting root v1, as the agent's image repository is. */
async function client(): Promise<Updater> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-tuf-gw-'));
  dirs.push(dir);
  await writeFile(join(dir, 'root.json'), trustedRoot);
  return new Updater({
    metadataDir: dir,
    metadataBaseUrl: `${base}/tuf/image/`,
    fetcher: new HeaderFetcher(bearer(deviceToken)),
  });
}

async function delegate(
  apps: string[],
  gatewayPublicKey?: string,
): Promise<{ status: number; body: unknown }> {
  const online = await http<{ gateway: string }>('GET', TufRoutes.onlineKeys);
  const key = tufKeyFromPublicKey(gatewayPublicKey ?? online.body.gateway);
  const md = withGatewayDelegation(keys.current, key, apps, new Date(Date.now() + YEAR_MS));
  await signMetadata(md, [keys.targets]);
  const r = await http('POST', TufRoutes.targets, md.toJSON());
  if (r.status === 200) keys.current = md;
  return r;
}

void test('without the offline delegation the gateway signature is refused (409 FLT_TUF_NOT_DELEGATED)', async () => {
  const r = await http<{ error: { code: string } }>('POST', signPath(imgs));
  assert.equal(r.status, 409, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'FLT_TUF_NOT_DELEGATED');
  const release = await http<Release>(
    'GET',
    routePath(ReleaseRoutes.release, { app: 'imgs', version: '1-abc' }),
  );
  assert.equal(release.body.signed, false);
  const deploy = await http<{ error: { code: string } }>('POST', ReleaseRoutes.deploy, {
    app: 'imgs',
    version: '1-abc',
    filter: 'status==accepted',
  });
  assert.equal(deploy.body.error.code, 'FLT_RELEASE_UNSIGNED');
  const audit = await http<{ items: { action: string }[] }>(
    'GET',
    '/api/v1/audit?action=tuf.gateway.refused',
  );
  assert.ok(audit.body.items.some((e) => e.action === 'tuf.gateway.refused'));
});

void test("a delegation to another key than the server's gateway key is refused at upload", async () => {
  const r = await delegate(
    ['imgs'],
    (await import('@flotilla/node-kit')).publicKeyOfTufKey(memorySigner(generateEd25519().privateKeyPem).key),
  );
  assert.equal(r.status, 422, JSON.stringify(r.body));
  assert.equal((r.body as { error: { code: string } }).error.code, 'FLT_TUF_KEY_MISMATCH');
});

void test('with the delegation, the server signs the delegated app online and tuf-js resolves it through it', async () => {
  assert.equal((await delegate(['imgs'])).status, 200);
  const signed = await http<GatewaySignatureResponse>('POST', signPath(imgs));
  assert.equal(signed.status, 200, JSON.stringify(signed.body));
  assert.equal(signed.body.signed, true);
  assert.ok(signed.body.gatewayVersion !== null && signed.body.gatewayVersion >= 1);
  // Still refused for an app the delegation does not name.
  const other = await http<{ error: { code: string } }>('POST', signPath(web));
  assert.equal(other.status, 409);
  assert.equal(other.body.error.code, 'FLT_TUF_NOT_DELEGATED');

  const openapi = await http<{ paths: Record<string, unknown> }>('GET', '/openapi.json');
  assert.ok(
    openapi.body.paths['/api/v1/releases/{app}/{version}/gateway-signature'],
    'in the OpenAPI document',
  );

  const updater = await client();
  await updater.refresh();
  const info = await updater.getTargetInfo(imgs.targetPath);
  assert.ok(info, 'tuf-js finds the delegated release');
  assert.equal(info.hashes.sha256, imgs.rootObject);
  assert.ok(await updater.getTargetInfo(web.targetPath), 'offline-signed targets still resolve');
  // The targets keep the delegation when the operator signs more releases offline.
  await signReleases(t, keys, [web], (r) => rootLength.get(r.rootObject) ?? 0);
  const again = await client();
  await again.refresh();
  assert.ok(await again.getTargetInfo(imgs.targetPath), 'the delegation survives the next targets');
});

/** What a compromised server could do with the online keys it holds: sign gateway.json as it likes. */
async function forgeGatewayRole(targets: TargetFile[], signer?: Parameters<typeof signMetadata>[1][number]) {
  // The running server's own store (a compromised server serves what it wrote).
  const store = FsMetadataStore.open(join(t.dataDir, 'tuf'));
  const online = await loadOrCreateOnlineKeys(join(t.dataDir, 'tuf-keys'));
  const version = ((await store.latestVersion('image', 'gateway')) ?? 0) + 1;
  const md = newTargets({ version, expires: new Date(Date.now() + YEAR_MS), targets });
  await signMetadata(md, [signer ?? online.gateway]);
  await store.put('image', 'gateway', version, serializeMetadata(md));
  await publishSnapshotAndTimestamp({ store, keys: online, policy: expiryPolicy() }, 'image', new Date());
}

void test('a gateway signature over a path outside the delegation is refused by tuf-js, even when served', async () => {
  const outside = releaseTarget(
    { app: 'web', version: '6.6.6', runtime: 'files', rootObject: imgs.rootObject },
    rootLength.get(imgs.rootObject) ?? 1,
  );
  const inside = releaseTarget(
    { app: 'imgs', version: '1-abc', runtime: 'files', rootObject: imgs.rootObject },
    rootLength.get(imgs.rootObject) ?? 1,
  );
  const key = await readKeyFile(join(t.dataDir, 'tuf-keys', 'gateway.key.json'));
  await forgeGatewayRole([outside, inside], key.signer);
  const served = await fetch(`${base}/tuf/image/timestamp.json`, { headers: bearer(deviceToken) });
  assert.equal(served.status, 200);
  const updater = await client();
  await updater.refresh();
  assert.ok(await updater.getTargetInfo(inside.path), 'the forged file is read for delegated paths');
  assert.equal(
    await updater.getTargetInfo(outside.path),
    undefined,
    'web/6.6.6 is not the gateway role’s to sign',
  );
  // The server's own resolution agrees: it is not a target, so it cannot be deployed.
  const direct = await http('GET', `/tuf/image/targets/web/6.6.6/${imgs.rootObject}`);
  assert.equal(direct.status, 404);
});

void test('a gateway.json signed by another key than the delegated one is refused by tuf-js', async () => {
  const inside = releaseTarget(
    { app: 'imgs', version: '9-evil', runtime: 'files', rootObject: imgs.rootObject },
    rootLength.get(imgs.rootObject) ?? 1,
  );
  await forgeGatewayRole([inside], memorySigner(generateEd25519().privateKeyPem));
  const updater = await client();
  await updater.refresh();
  await assert.rejects(updater.getTargetInfo(inside.path), /gateway was signed by 0\/1 keys/);
  // Nor does the server itself vouch for it (it checks gateway.json against the delegation too).
  const direct = await http('GET', `/tuf/image/targets/imgs/9-evil/${imgs.rootObject}`);
  assert.equal(direct.status, 404);
});
