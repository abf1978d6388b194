/**
 * How a converted image reaches a platform. Every delivery lands the file atomically: it is written
 * under a temporary name in the destination directory, flushed, then renamed to its final name, so
 * a node never sees a partial file under the final name (a worker killed mid-copy leaves only a
 * `.tmp-` file, which the next delivery of the same image replaces).
 */
import type { PlatformConfig } from '../config/config.js';
import { LocalDelivery } from './local.js';
import { RemoteDelivery } from './remote.js';

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

export function deliveryFor(platform: PlatformConfig): Delivery {
  const access = platform.access;
  return access.type === 'local' ? new LocalDelivery(access.imageDir) : new RemoteDelivery(access);
}
