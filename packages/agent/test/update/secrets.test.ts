/**
 * Secrets in runtime config on the agent (docs/security.md "Secrets in runtime config"): a value
 * sealed to this device and matching the offline-signed commitment reaches the app's environment
 * and nothing else; a tampered, substituted, foreign or missing one is refused before anything is
 * fetched or stopped, with a stable code, and the app stays on the release it runs.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  deviceIdFromPublicKey,
  generateEd25519,
  sealSecret,
  secretCommitment,
  secretNonce,
} from '@flotilla/node-kit';
import { SecretOpener } from '../../src/secrets/opener.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { tempDir } from '@flotilla/testkit';
import { harness } from './engine-harness.js';
import { buildRelease, serverStore, writeTree } from './fixtures.js';

const SCRIPT =
  "require('fs').writeFileSync(process.env.FLOTILLA_APP_DATA + '/seen', process.env.FLOTILLA_RELEASE + ' ' + process.env.TOKEN); setInterval(() => {}, 1000);";
const config = {
  process: {
    command: [process.execPath, '-e', SCRIPT],
    env: { MODE: 'test', TOKEN: { $secret: 'TOKEN' } },
    stopTimeoutMs: 2000,
  },
};

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

async function waitSeen(path: string, want: string): Promise<string> {
  for (let i = 0; i < 300; i++) {
    try {
      const text = readFileSync(path, 'utf8');
      if (text === want) return text;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return readFileSync(path, 'utf8');
}

void test('a sealed secret reaches the app env only; tampered, substituted, foreign or missing ones are refused and v1 keeps running', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const device = generateEd25519();
  const deviceId = deviceIdFromPublicKey(device.publicKey);
  const other = generateEd25519();
  const opener = new SecretOpener(createPrivateKey(device.privateKeyPem), device.publicKey);

  const value = `tok-${secretNonce().slice(0, 24)}`;
  const release = async (version: string): Promise<ReleaseSpec> =>
    buildRelease(store, writeTree(join(base, version), { VERSION: version }), {
      app: 'api',
      version,
      runtime: 'process',
      config,
    });
  /** The release as the director would deliver it, sealed with `seal` (defaults: honest). */
  const withSecret = async (
    r: ReleaseSpec,
    how: { sealedValue?: string; to?: string; tamper?: boolean; omit?: boolean } = {},
  ): Promise<ReleaseSpec> => {
    const opening = { value, nonce: secretNonce() };
    const commitment = secretCommitment('TOKEN', opening);
    let sealed: string | null = await sealSecret(
      how.to ?? device.publicKey,
      { deviceId, targetPath: r.targetPath, name: 'TOKEN' },
      how.sealedValue === undefined ? opening : { value: how.sealedValue, nonce: secretNonce() },
    );
    if (how.tamper) {
      const bytes = Buffer.from(sealed, 'base64url');
      bytes[bytes.length - 5]! ^= 0x01;
      sealed = bytes.toString('base64url');
    }
    if (how.omit) sealed = null;
    return { ...r, secrets: { TOKEN: { commitment, sealed } } };
  };

  const v1 = await withSecret(await release('1'));
  const h = await harness(t, store, { secrets: opener });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  const seen = join(h.dataDir, 'apps', 'api', 'data', 'seen');
  assert.equal(await waitSeen(seen, `1 ${value}`), `1 ${value}`);
  assert.equal(h.engine.records.installed('api').current?.root, v1.root);

  const cases: [string, ReleaseSpec, string][] = [
    [
      'tampered ciphertext',
      await withSecret(await release('2'), { tamper: true }),
      'FLT_SECRET_SEALED_INVALID',
    ],
    [
      'a value the server substituted',
      await withSecret(await release('3'), { sealedValue: 'forged-value' }),
      'FLT_SECRET_MISMATCH',
    ],
    [
      'sealed to another device',
      await withSecret(await release('4'), { to: other.publicKey }),
      'FLT_SECRET_SEALED_INVALID',
    ],
    ['not delivered', await withSecret(await release('5'), { omit: true }), 'FLT_SECRET_MISSING'],
  ];
  for (const [what, bad, code] of cases) {
    h.reports.length = 0;
    h.assign([bad]);
    assert.equal(await h.converge(), false, what);
    const failed = h.reports.find((r) => r.phase === 'failed');
    assert.equal(failed?.targetPath, bad.targetPath, what);
    assert.equal(failed?.error?.code, code, `${what}: ${JSON.stringify(failed?.error)}`);
    assert.ok(!h.reports.some((r) => r.phase === 'downloading' || r.phase === 'stopping'), what);
    assert.ok(!JSON.stringify(h.reports).includes(value), `${what}: a report shows the value`);
    assert.equal(h.engine.records.installed('api').current?.root, v1.root, `${what}: v1 stays`);
    assert.equal(readFileSync(seen, 'utf8'), `1 ${value}`, `${what}: v1 keeps running`);
  }

  // The operator's restart opens the secret again from the stored ciphertext (the plaintext is
  // nowhere on disk but in what the app itself wrote).
  rmSync(seen);
  await h.engine.restart('api', new AbortController().signal);
  assert.equal(await waitSeen(seen, `1 ${value}`), `1 ${value}`);
  for (const file of allFiles(h.dataDir)) {
    if (file === seen) continue;
    assert.ok(!readFileSync(file).includes(value), `${file} holds the secret value`);
  }
});
