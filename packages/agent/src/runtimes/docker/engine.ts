/** Talking to the Docker Engine: the connection, its failures as FlotillaErrors, names and labels. */
import { createHash } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import Docker from 'dockerode';

/** `DOCKER_HOST` (`unix:///path` or `tcp://host:port`), default the engine's own socket. */
export function connectEngine(host: string | undefined): { docker: Docker; where: string } {
  const where = host ?? 'unix:///var/run/docker.sock';
  if (where.startsWith('unix://'))
    return { docker: new Docker({ socketPath: where.slice('unix://'.length) }), where };
  if (where.startsWith('/')) return { docker: new Docker({ socketPath: where }), where: `unix://${where}` };
  const url = new URL(where.replace(/^tcp:/, 'http:'));
  return { docker: new Docker({ host: url.hostname, port: Number(url.port || 2375) }), where };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/** The HTTP status of an Engine API error, or undefined. */
export function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number } | null)?.statusCode;
}

export function engineUnavailable(error: unknown): boolean {
  if (error instanceof FlotillaError) return error.code === 'FLT_ENGINE_UNAVAILABLE';
  const code = (error as { code?: string } | null)?.code;
  return code !== undefined && UNREACHABLE.has(code);
}

/** Runs an Engine API call; a connection failure becomes FLT_ENGINE_UNAVAILABLE naming `where`. */
export async function engineCall<T>(call: () => Promise<T>, where = 'DOCKER_HOST'): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (engineUnavailable(error) && !(error instanceof FlotillaError))
      throw new FlotillaError(
        'FLT_ENGINE_UNAVAILABLE',
        `the Docker Engine at ${where} does not answer (${(error as Error).message}); is dockerd running?`,
        { cause: error },
      );
    throw error;
  }
}

export const LABEL = {
  owner: 'io.flotilla.owner',
  app: 'io.flotilla.app',
  service: 'io.flotilla.service',
  release: 'io.flotilla.release',
  hash: 'io.flotilla.config-hash',
} as const;

/** The short owner id of one agent (its data directory): containers of other agents are not ours. */
export function ownerId(dataDir: string): string {
  return createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
}

/** Names on the engine: `fl-<owner>-<app>[-<service>]`; a parked container adds `.<hash12>`. */
export class Names {
  constructor(readonly owner: string) {}
  network(app: string): string {
    return `fl-${this.owner}-${app}`;
  }
  volume(app: string, volume: string): string {
    return `fl-${this.owner}-${app}-${volume}`;
  }
  container(app: string, service: string): string {
    return `fl-${this.owner}-${app}-${service}`;
  }
  parked(app: string, service: string, hash: string): string {
    return `${this.container(app, service)}.${hash.slice(0, 12)}`;
  }
}

/** JSON with sorted object keys: the same definition always hashes the same. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value as Record<string, unknown>)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
