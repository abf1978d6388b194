export { pullImage, resolveImage } from './registry/pull.js';
export { formatImageReference, parseImageReference } from './registry/reference.js';
export { DEFAULT_REGISTRY_LIMITS } from './registry/client.js';
export type {
  CachedLayer,
  ImageConfig,
  ImagePlatform,
  ImageReference,
  LayerCompression,
  LayerDescriptor,
  PulledImage,
  PullOptions,
  PullProgress,
  RegistryAuth,
  RegistryLimits,
  RegistryLocation,
  ResolvedImage,
  ResolveOptions,
} from './registry/types.js';
export { convertImage } from './convert/convert.js';
export type { ConvertOptions, ConvertProgress, ConvertResult, LayerSource } from './convert/types.js';
