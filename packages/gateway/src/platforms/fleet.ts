/**
 * `fleet` platforms: the image is delivered by Flotilla agents enrolled on the platform's nodes.
 * Its release tree (built into the server's object store during the conversion) becomes release
 * `<tag>-<root12>` of the platform's app, signed by the server's online gateway role (which the
 * offline targets key must have delegated the app to) and deployed to the devices the platform's
 * filter selects; agents verify it through the delegation and fetch only what changed (deltas).
 * The gateway does not know the server: the host lends these functions (the CLI joins them).
 */
import { FlotillaError } from '@flotilla/protocol';
import type { ObjectSink } from '@flotilla/store';

/** What the host (the server) does for a fleet platform; structurally the server's `GatewayFleet`. */
export interface FleetHost {
  /** Where the release tree is built (the server's object store). */
  readonly objects: ObjectSink;
  publish(input: {
    app: string;
    version: string;
    rootObject: string;
    filter: string;
    actor: { userId: string; username: string };
  }): Promise<{ targetPath: string; deployment: string; devices: number }>;
  withdraw(input: {
    app: string;
    version: string;
    actor: { userId: string; username: string };
  }): Promise<void>;
}

/** The release version of an image: its tag (made a valid version) and the start of its tree's root id. */
export function fleetVersion(tag: string, rootObject: string): string {
  const safe = tag.replace(/[^A-Za-z0-9_.+-]/g, '_').slice(0, 100);
  const head = /^[A-Za-z0-9]/.test(safe) ? safe : `v${safe}`;
  return `${head}-${rootObject.slice(0, 12)}`;
}

/** `<app>/<version>/<root>` (what a fleet image's `path` holds) back to app and version. */
export function parseFleetPath(path: string): { app: string; version: string } {
  const [app, version, root] = path.split('/');
  if (app === undefined || version === undefined || root === undefined)
    throw new FlotillaError('FLT_VALIDATION', `not a release target path: ${path}`);
  return { app, version };
}

export function requireFleetHost(host: FleetHost | undefined, platform: string): FleetHost {
  if (host) return host;
  throw new FlotillaError(
    'FLT_GATEWAY_CONFIG_INVALID',
    `platform ${platform} is a fleet platform: its images are published by the server, whose own ` +
      'process runs their jobs (also with --redis), not a `flotilla gateway worker`',
    { details: { platform } },
  );
}
