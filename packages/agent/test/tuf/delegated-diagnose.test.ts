/**
 * Refusals of the image repository's delegated `gateway` role (docs/releases.md "Delegated
 * signing") are named like those of the top-level roles: tuf-js refuses a `N.gateway.json` with a
 * message-only error, and the agent explains it from the trusted snapshot and targets — a forged
 * signature is FLT_TUF_SIGNATURE, altered bytes FLT_TUF_HASH, an expired file FLT_TUF_FREEZE.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  generateEd25519,
  memorySigner,
  metaFileFor,
  newSnapshot,
  newTargets,
  serializeMetadata,
  signMetadata,
  withGatewayDelegation,
} from '@flotilla/node-kit';
import type { Signer } from '@flotilla/node-kit';
import { diagnoseRefusal } from '../../src/tuf/diagnose.js';
import { stepOfUrl } from '../../src/tuf/failure-log.js';
import { tufFailureReport } from '../../src/tuf/failure-report.js';
import { FlotillaError } from '@flotilla/protocol';

const DAY = 86_400_000;

/** A trusted snapshot and targets delegating `imgs` to `gatewayKey`, and gateway bytes as given. */
async function trusted(gatewayKey: Signer, gateway: Buffer, snapshotGateway = gateway): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-agent-deleg-'));
  const targets = withGatewayDelegation(undefined, gatewayKey.key, ['imgs'], new Date(Date.now() + 90 * DAY));
  const targetsBytes = serializeMetadata(targets);
  const snapshot = newSnapshot({
    version: 1,
    expires: new Date(Date.now() + DAY),
    targetsMeta: metaFileFor(targetsBytes, 1),
    delegatedMeta: { gateway: metaFileFor(snapshotGateway, 1) },
  });
  await writeFile(join(dir, 'targets.json'), targetsBytes);
  await writeFile(join(dir, 'snapshot.json'), serializeMetadata(snapshot));
  return dir;
}

async function gatewayFile(signer: Signer, expires = new Date(Date.now() + DAY)): Promise<Buffer> {
  const md = newTargets({ version: 1, expires });
  await signMetadata(md, [signer]);
  return serializeMetadata(md);
}

const newKey = () => memorySigner(generateEd25519().privateKeyPem);

void test('gateway.json refusals get the code of the check that failed', async (t) => {
  const key = newKey();
  const dirs: string[] = [];
  t.after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  const forged = await gatewayFile(newKey());
  dirs.push(await trusted(key, forged));
  assert.equal(diagnoseRefusal('gateway', forged, dirs.at(-1)!), 'FLT_TUF_SIGNATURE');

  const good = await gatewayFile(key);
  dirs.push(await trusted(key, good, await gatewayFile(key, new Date(Date.now() + 2 * DAY))));
  assert.equal(diagnoseRefusal('gateway', good, dirs.at(-1)!), 'FLT_TUF_HASH');

  const expired = await gatewayFile(key, new Date(Date.now() - DAY));
  dirs.push(await trusted(key, expired));
  assert.equal(diagnoseRefusal('gateway', expired, dirs.at(-1)!), 'FLT_TUF_FREEZE');
});

void test('the gateway role is recognised in URLs and reported as a targets step', () => {
  assert.equal(stepOfUrl('https://server/tuf/image/3.gateway.json'), 'gateway');
  const report = tufFailureReport(
    new FlotillaError('FLT_TUF_SIGNATURE', 'refused', { details: { repository: 'image', step: 'gateway' } }),
  );
  assert.equal(report.step, 'targets');
  assert.equal(report.repository, 'image');
});
