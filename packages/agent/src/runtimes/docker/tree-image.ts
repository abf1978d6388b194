/**
 * An image as a release tree holds it (its verified config, its layer files held open), shared by
 * the two ways it reaches the engine: `docker load` (release-images.ts) and the loopback registry
 * (loopback-registry.ts).
 */
import { FlotillaError } from '@flotilla/protocol';
import type { TreeFile } from '../runtime.js';

export interface TreeLayer {
  path: string;
  diffId: string;
  size: number;
  file: TreeFile;
}

export interface TreeImage {
  id: string;
  config: Buffer;
  layers: TreeLayer[];
}

/** A layer whose bytes (hashed as they were sent) are not its diff id. */
export function layerMismatch(ref: string, layer: TreeLayer, got: string): FlotillaError {
  return new FlotillaError(
    'FLT_HASH_MISMATCH',
    `image ${ref}: layer ${layer.diffId} in the release tree has other content (${got}); it was changed after the release was installed`,
    { details: { reference: ref, expected: layer.diffId, actual: got, path: layer.path } },
  );
}
