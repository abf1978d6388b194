/**
 * Single-machine convenience mode: the operator explicitly lets this server hold the offline root and
 * targets keys too, so one process can sign releases. It gives up the protection against a
 * compromised server (docs/security.md) and exists for laptops and labs; the keys are still separate
 * from the online keys, and everything goes through the same checks as an upload from the CLI.
 */
import { newImageRoot, nextTargets, serializeMetadata, signMetadata } from '@flotilla/node-kit';
import type { Signer } from '@flotilla/node-kit';
import type { TargetFile } from '@tufjs/models';
import type { Clock } from '../context.js';
import { expiresAfter } from './expiry.js';
import type { ImageRepository } from './image-repository.js';

export interface LocalOfflineKeys {
  root: Signer;
  targets: Signer;
  /** Lifetime of locally signed root and targets, seconds (default 365 days). */
  lifetimeSeconds?: number;
}

const YEAR_SECONDS = 365 * 86_400;

/** Registers root v1 (unless the repository has one) and empty targets v1, signed with the local keys. */
export async function initLocalTrust(
  image: ImageRepository,
  keys: LocalOfflineKeys,
  clock: Clock,
): Promise<void> {
  if (await image.root()) return;
  const expires = expiresAfter(clock.now(), keys.lifetimeSeconds ?? YEAR_SECONDS);
  const root = newImageRoot({
    rootKeys: [keys.root.key],
    targetsKeys: [keys.targets.key],
    online: image.onlinePublicKeys(),
    expires,
  });
  await signMetadata(root, [keys.root]);
  await image.submitRoot(serializeMetadata(root));
  const targets = nextTargets(undefined, [], expires);
  await signMetadata(targets, [keys.targets]);
  await image.submitTargets(serializeMetadata(targets));
}

/** Adds `release` to the image targets (next version), signed with the local targets key. */
export async function signReleaseLocally(
  image: ImageRepository,
  keys: LocalOfflineKeys,
  release: TargetFile,
  clock: Clock,
): Promise<{ targets: number }> {
  const targets = nextTargets(
    await image.targets(),
    [release],
    expiresAfter(clock.now(), keys.lifetimeSeconds ?? YEAR_SECONDS),
  );
  await signMetadata(targets, [keys.targets]);
  return image.submitTargets(serializeMetadata(targets));
}
