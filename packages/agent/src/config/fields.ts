/** The configuration keys this component reads, and their kinds (coercion: @flotilla/protocol). */
import { coerceConfigField, envNameOf, showConfigValue } from '@flotilla/protocol';
import type { Coerced, ConfigFieldSpec } from '@flotilla/protocol';

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
  trustedRootFile: { kind: 'nullableString' },
};

export { envNameOf };
export type { Coerced };

/** Converts a YAML or text value to the key's type; ranges and patterns are the schema's job. */
export function coerceField(key: string, value: unknown): Coerced {
  return coerceConfigField(CONFIG_FIELDS, key, value);
}

export const show = showConfigValue;
