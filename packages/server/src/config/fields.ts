/** The configuration keys this component reads, and their kinds (coercion: @flotilla/protocol). */
import { envNameOf } from '@flotilla/protocol';
import type { ConfigFieldSpec } from '@flotilla/protocol';

export const CONFIG_FIELDS: Readonly<Record<string, ConfigFieldSpec>> = {
  listenHost: { kind: 'string' },
  listenPort: { kind: 'integer' },
  dataDir: { kind: 'string' },
  database: { kind: 'string' },
  logLevel: { kind: 'string' },
  logFormat: { kind: 'string' },
  bodyLimitBytes: { kind: 'integer' },
  maxHeaderBytes: { kind: 'integer' },
  adminUsername: { kind: 'string' },
  adminPassword: { kind: 'string', envOnly: true },
  sessionTtlMs: { kind: 'duration' },
  deviceTokenTtlMs: { kind: 'duration' },
  nonceTtlMs: { kind: 'duration' },
  devicePollIntervalMs: { kind: 'duration' },
  heartbeatIntervalMs: { kind: 'duration' },
  offlineAfterMs: { kind: 'duration' },
  publicUrl: { kind: 'string' },
  trustProxy: { kind: 'boolean' },
  objectGcGraceMs: { kind: 'duration' },
  objectGcIntervalMs: { kind: 'duration' },
  maxUploadBytes: { kind: 'integer' },
  deltaLevel: { kind: 'integer' },
  maxDeltaFileBytes: { kind: 'integer' },
  allowServerSideSigning: { kind: 'boolean' },
  minFreeDiskBytes: { kind: 'integer' },
};

export { envNameOf };
