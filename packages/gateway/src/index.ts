export { pullImage } from './registry/pull.js';
export type {
  CachedLayer,
  ImageConfig,
  ImagePlatform,
  ImageReference,
  LayerCompression,
  PulledImage,
  PullOptions,
  PullProgress,
  RegistryAuth,
  RegistryLimits,
  RegistryLocation,
} from './registry/types.js';
export { convertImage } from './convert/convert.js';
export type { ConvertOptions, ConvertProgress, ConvertResult, LayerSource } from './convert/types.js';
