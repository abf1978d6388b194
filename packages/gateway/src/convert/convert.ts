import { FlotillaError } from '@flotilla/protocol';
import type { ConvertOptions, ConvertResult, LayerSource } from './types.js';

/**
 * Applies `layers` (bottom first) into one root file system and writes it as a reproducible
 * squashfs file and, when `options.sink` is given, as a Flotilla release tree.
 */
export async function convertImage(layers: LayerSource[], options: ConvertOptions): Promise<ConvertResult> {
  void layers;
  void options;
  return Promise.reject(new FlotillaError('FLT_INTERNAL', 'convertImage: being written (gwfetch skeleton)'));
}
