export { pullImage, resolveImage } from './registry/pull.js';
export { formatImageReference, parseImageReference } from './registry/reference.js';
export { DEFAULT_REGISTRY_LIMITS } from './registry/client.js';
export { MediaTypes, parseManifest, selectPlatform } from './registry/manifest.js';
export type { Descriptor, ParsedManifest } from './registry/manifest.js';
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
export { ConversionCache } from './convert/reuse.js';
export type { ConversionBase, ImageIndex } from './convert/reuse.js';
export { writeSquashfsImage } from './convert/sqfs-writer.js';
export { loadGatewayConfig, parseGatewayConfig } from './config/config.js';
export type {
  GatewayConfig,
  LocationConfig,
  LocationAuth,
  PlatformConfig,
  PlatformAccess,
} from './config/config.js';
export { startGateway } from './gateway.js';
export type { Gateway, GatewayOptions } from './gateway.js';
export { registerImageRoutes } from './http/routes.js';
export type { RouteHost } from './http/routes.js';
export { startBullWorker, BullJobQueue, QUEUE_NAME } from './jobs/bull.js';
export type { BullTuning, BullWorkerHandle } from './jobs/bull.js';
export type { ImageImporter, ImportRequest, ImportResult } from './jobs/importer.js';
export { runJob } from './jobs/runner.js';
export type { JobRunnerDeps } from './jobs/runner.js';
export { ImageStore } from './jobs/store.js';
export type { GatewayTables, GatewayDb, GatewayAudit, GatewayAuditEntry, Clock } from './jobs/tables.js';
export { GatewayService } from './service/images.js';
export type { Operator } from './service/access.js';
export { LocalDelivery } from './platforms/local.js';
export { RemoteDelivery } from './platforms/remote.js';
export { sweepExpired } from './expiry/sweep.js';
export { registryImporter } from './jobs/registry-importer.js';
export type { Delivery } from './platforms/delivery.js';
export { fleetVersion } from './platforms/fleet.js';
export type { FleetHost } from './platforms/fleet.js';
