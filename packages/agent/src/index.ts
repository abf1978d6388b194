export { resolveAgentConfig, AGENT_CONFIG, AgentConfigSchema, LOG_LEVELS } from './config.js';
export type { AgentConfig, AgentFlags, ResolveAgentConfigInput } from './config.js';
export { startAgent } from './daemon.js';
export type { RunningAgent, StartAgentOptions } from './daemon.js';
export type { AgentLifecycleState } from './lifecycle.js';
export { collectInventory } from './inventory/collect.js';
export type { InventoryConfig } from './inventory/collect.js';
export { dryRunUpdates, formatDryRun } from './dry-run.js';
export type { UpdateDryRun } from './dry-run.js';
export { UpdateEngine } from './update/engine.js';
export type { UpdateEngineOptions, UpdateSource } from './update/engine.js';
export type { Plan, ReleaseSpec, Step } from './model/release.js';
export { HttpFetcher } from './fetch/http-fetcher.js';
export type { HttpFetcherOptions } from './fetch/http-fetcher.js';
export { openStateDatabase } from './state/db.js';
export { Loader } from './loader/loader.js';
export type { LoaderExit, LoaderOptions } from './loader/loader.js';
export { runLoaderProbe } from './loader/probe.js';
export { AGENT_APP, InstallLayout } from './loader/layout.js';
export type { LoaderState } from './loader/layout.js';

// The device protocol's building blocks, for the fleet simulator (packages/sim), which speaks the
// real protocol with many devices in one process.
export { agentHttpClient } from './client/http.js';
export { nodeFetch } from './util/node-fetch.js';
export { enrollDevice } from './client/enroll.js';
export type { EnrollInput } from './client/enroll.js';
export { TokenManager } from './client/tokens.js';
export { reactionTo } from './client/classify.js';
export type { DeviceIdentity } from './state/identity.js';
export { ControlChannel } from './control/channel.js';
export type { ChannelOptions } from './control/channel.js';
export type { ConnectionHandlers } from './control/connection.js';
export { ReportQueue } from './update/report-queue.js';
export type { ReportQueueOptions } from './update/report-queue.js';
export {
  downloadFirstRoot,
  MemoryMetadata,
  provisionTrustedRoot,
  provisionTrustedRootInMemory,
  readAssignment,
} from './tuf/index.js';
export type { Assignment, VerifiedRelease } from './tuf/index.js';
export { ReleaseTreeImageProvider, IMAGES_DIR } from './runtimes/docker/release-images.js';
export type { ImageProvider } from './runtimes/docker/image-provider.js';
