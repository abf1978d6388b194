/**
 * How a converted image reaches a platform. Every delivery lands the file atomically: it is written
 * under a temporary name in the destination directory, flushed, then renamed to its final name, so
 * a node never sees a partial file under the final name (a worker killed mid-copy leaves only a
 * `.tmp-` file, which the next delivery of the same image replaces).
 */
import type { PlatformConfig } from '../config/config.js';
import { LocalDelivery } from './local.js';
import { RemoteDelivery } from './remote.js';
import { parseFleetPath, requireFleetHost } from './fleet.js';
import type { FleetHost } from './fleet.js';

export interface Delivery {
  /** Copies `file` to the platform as `name`; returns the path the platform's nodes use. */
  deliver(file: string, name: string, signal?: AbortSignal): Promise<string>;
  /** Removes a delivered image; missing is fine. */
  remove(path: string): Promise<void>;
}

/** The file name of an image on its platform: its content id, so equal images share a file. */
export function deliveredName(contentId: string): string {
  return `${contentId}.squashfs`;
}

export function temporaryName(name: string, token: string): string {
  return `.${name}.tmp-${token}`;
}

/** The delivery of a `local` or `remote` platform (`fleet` ones publish releases instead: fleet.ts). */
export function deliveryFor(platform: PlatformConfig, fleet?: FleetHost): Delivery {
  const access = platform.access;
  if (access.type === 'fleet') return new FleetRemoval(requireFleetHost(fleet, platform.name));
  return access.type === 'local' ? new LocalDelivery(access.imageDir) : new RemoteDelivery(access);
}

/** A fleet image's removal: the release leaves its devices and the gateway role. */
class FleetRemoval implements Delivery {
  constructor(private readonly fleet: FleetHost) {}

  deliver(): Promise<string> {
    return Promise.reject(new Error('fleet images are published by the job runner, not copied'));
  }

  async remove(path: string): Promise<void> {
    const { app, version } = parseFleetPath(path);
    await this.fleet.withdraw({ app, version, actor: { userId: 'gateway', username: 'gateway' } });
  }
}
