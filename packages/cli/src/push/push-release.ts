/**
 * `release push` end to end: load the offline targets keys (so a wrong passphrase fails before
 * anything is sent), build the tree while uploading what the server lacks, create the release,
 * then publish targets v(N+1) naming it, signed offline. The server re-signs snapshot and timestamp.
 */
import { buildTree } from '@flotilla/store';
import type { BuildStats } from '@flotilla/store';
import type { TargetFile } from '@tufjs/models';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { releaseTarget } from '@flotilla/node-kit';
import type { Release, ReleaseTargetCustom, RuntimeKind, SecretOpening } from '@flotilla/protocol';
import type { ApiClient } from '../api/client.js';
import { currentRoot, currentTargets } from '../signing/image-api.js';
import { loadRoleKeys } from '../signing/role-keys.js';
import type { RoleSigningKeys } from '../signing/role-keys.js';
import { publishTargets } from '../signing/sign.js';
import { dedupRatio } from './progress.js';
import { createRelease, putSecrets } from './releases-api.js';
import { UploadSink } from './upload-sink.js';
import type { UploadStats } from './upload-sink.js';
import type { ObjectTransport } from './transport.js';

export interface PushInput {
  dir: string;
  app: string;
  version: string;
  runtime: RuntimeKind;
  config?: Record<string, unknown> | undefined;
  /** Secrets the config references: commitments (signed) and values with nonces (server only). */
  secrets?: { commitments: Record<string, string>; openings: Record<string, SecretOpening> } | undefined;
  keysDir: string;
  passphrase: string | undefined;
  targetsExpires: Date;
}

export interface PushResult {
  release: Release;
  targetPath: string;
  targetsVersion: number;
  tree: BuildStats;
  upload: UploadStats & { dedupRatio: number };
}

export async function pushRelease(
  client: ApiClient,
  transport: ObjectTransport,
  input: PushInput,
  onProgress?: (stats: Readonly<UploadStats>) => void,
): Promise<PushResult> {
  const root = await currentRoot(client);
  const keys = await loadRoleKeys(input.keysDir, root, 'targets', input.passphrase);
  const sink = new UploadSink({ transport, ...(onProgress && { onProgress }) });
  const built = await buildTree(input.dir, { sink });
  const upload = await sink.finish();
  const hasSecrets = input.secrets !== undefined && Object.keys(input.secrets.commitments).length > 0;
  // What the server records and what the targets key signs are the same fields.
  const custom: ReleaseTargetCustom = {
    app: input.app,
    version: input.version,
    runtime: input.runtime,
    rootObject: built.root,
    ...(input.config !== undefined && { config: input.config }),
    ...(hasSecrets && { secrets: input.secrets!.commitments }),
  };
  const release = await createRelease(client, custom);
  if (release.rootObject !== built.root) {
    throw new FlotillaError(
      'FLT_CONFLICT',
      `${input.app}@${input.version} already exists with another tree (${release.rootObject})`,
    );
  }
  // Values go to the server before the release is signed, so a signed release has them all.
  const stored = hasSecrets
    ? (await putSecrets(client, input.app, input.version, { secrets: input.secrets!.openings })).stored
    : [];
  const target = releaseTarget(custom, sink.rootLength(built.root));
  const targetsVersion = await signRelease(client, keys, target, input.targetsExpires);
  return {
    release: {
      ...release,
      signed: true,
      ...(release.secrets && {
        secrets: release.secrets.map((s) => ({ ...s, stored: stored.includes(s.name) })),
      }),
    },
    targetPath: target.path,
    targetsVersion,
    tree: built.stats,
    upload: { ...upload, dedupRatio: dedupRatio(upload) },
  };
}

const SIGN_ATTEMPTS = 3;

/**
 * Adds the release to the image targets unless they already name it (pushing the same tree again,
 * e.g. after a network failure while signing, signs only once). When another push published the
 * same targets version first (FLT_TUF_ROLLBACK), the current targets are fetched and signed again.
 */
async function signRelease(
  client: ApiClient,
  keys: RoleSigningKeys,
  target: TargetFile,
  expires: Date,
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const current = await currentTargets(client);
    if (current?.signed.targets[target.path]?.equals(target) === true) return current.signed.version;
    try {
      return (await publishTargets(client, keys, [target], expires, current)).response.version;
    } catch (error) {
      if (!isFlotillaError(error) || error.code !== 'FLT_TUF_ROLLBACK' || attempt >= SIGN_ATTEMPTS)
        throw error;
    }
  }
}
