/** The configuration keys this component reads, and their kinds (coercion: @flotilla/protocol). */
import { envNameOf, showConfigValue } from '@flotilla/node-kit';
import type { ConfigFieldSpec } from '@flotilla/node-kit';

export const CONFIG_FIELDS: Readonly<Record<string, ConfigFieldSpec>> = {
  serverUrl: { kind: 'nullableString' },
  dataDir: { kind: 'string' },
  registrationKeyFile: { kind: 'nullableString' },
  registrationKey: { kind: 'nullableString', envOnly: true },
  tags: { kind: 'list' },
  logFile: { kind: 'nullableString' },
  logLevel: { kind: 'string' },
  logFormat: { kind: 'string' },
  pollIntervalMs: { kind: 'duration' },
  offline: { kind: 'boolean' },
  inventoryDir: { kind: 'string' },
  inventoryIntervalMs: { kind: 'duration' },
  inventoryCheckIntervalMs: { kind: 'duration' },
  inventoryScriptTimeoutMs: { kind: 'duration' },
  inventoryScriptMaxOutputBytes: { kind: 'integer' },
  requestTimeoutMs: { kind: 'duration' },
  maxResponseBytes: { kind: 'integer' },
  heartbeatIntervalMs: { kind: 'duration' },
  stopTimeoutMs: { kind: 'duration' },
  keepPreviousReleases: { kind: 'integer' },
  chunkCacheMaxBytes: { kind: 'integer' },
  fetchConcurrency: { kind: 'integer' },
  fetchBytesPerSecond: { kind: 'integer' },
  fetchDeltas: { kind: 'boolean' },
  stageReuse: { kind: 'string' },
  stageVerify: { kind: 'string' },
  deltaThreads: { kind: 'integer' },
  trustedRootFile: { kind: 'nullableString' },
};

export { envNameOf };

/** A value quoted for a problem message. */
export const show = showConfigValue;
