/** Offline signing as the CLI does it: a root naming the server's online keys, then targets naming releases. */
import assert from 'node:assert/strict';
import { TufRoutes } from '@flotilla/protocol';
import {
  generateEd25519,
  memorySigner,
  newImageRoot,
  nextTargets,
  releaseTarget,
  serializeMetadata,
  signMetadata,
} from '@flotilla/node-kit';
import type { Release } from '@flotilla/protocol';
import type { Signer } from '@flotilla/node-kit';
import type { Metadata, Targets } from '@tufjs/models';
import { bearer } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';

export interface OfflineKeys {
  root: Signer;
  targets: Signer;
  current?: Metadata<Targets>;
}

const YEAR_MS = 365 * 86_400_000;

export async function initTrust(t: TestApp): Promise<OfflineKeys> {
  const keys: OfflineKeys = {
    root: memorySigner(generateEd25519().privateKeyPem),
    targets: memorySigner(generateEd25519().privateKeyPem),
  };
  const online = await t.app.inject({
    method: 'GET',
    url: TufRoutes.onlineKeys,
    headers: bearer(t.adminToken),
  });
  assert.equal(online.statusCode, 200, online.body);
  const root = newImageRoot({
    rootKeys: [keys.root.key],
    targetsKeys: [keys.targets.key],
    online: online.json(),
    expires: new Date(Date.now() + YEAR_MS),
  });
  await signMetadata(root, [keys.root]);
  await submit(t, TufRoutes.root, serializeMetadata(root));
  return keys;
}

/** Signs the releases into the next targets version and uploads it. */
export async function signReleases(
  t: TestApp,
  keys: OfflineKeys,
  releases: Release[],
  length: (r: Release) => number,
) {
  const add = releases.map((r) =>
    releaseTarget(
      {
        app: r.app,
        version: r.version,
        runtime: r.runtime,
        rootObject: r.rootObject,
        ...(Object.keys(r.config).length > 0 && { config: r.config }),
      },
      length(r),
    ),
  );
  const targets = nextTargets(keys.current, add, new Date(Date.now() + YEAR_MS));
  await signMetadata(targets, [keys.targets]);
  await submit(t, TufRoutes.targets, serializeMetadata(targets));
  keys.current = targets;
}

async function submit(t: TestApp, url: string, bytes: Buffer): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url,
    headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
    payload: bytes,
  });
  assert.equal(res.statusCode, 200, res.body);
}
