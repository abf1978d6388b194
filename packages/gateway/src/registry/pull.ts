import { FlotillaError } from '@flotilla/protocol';
import type { ImageReference, PulledImage, PullOptions } from './types.js';

/**
 * Pulls an image's manifest, config and layers from `options.location` into the blob cache,
 * every blob verified by its digest. The reference's registry part is the caller's to resolve to
 * a location; the repository, tag and digest are used.
 */
export async function pullImage(reference: string | ImageReference, options: PullOptions): Promise<PulledImage> {
  void reference;
  void options;
  return Promise.reject(new FlotillaError('FLT_INTERNAL', 'pullImage: being written (gwfetch skeleton)'));
}
