/**
 * Expiry of the image repository's metadata as Prometheus gauges, so an alert fires well before
 * offline-signed metadata expires (the server cannot renew root and targets by itself).
 */
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { parseMetadata } from '@flotilla/node-kit';
import type { Clock } from '../context.js';
import type { ImageRepository } from './image-repository.js';

export function registerTufMetrics(registry: Registry, image: ImageRepository, clock: Clock): void {
  new Gauge({
    name: 'flotilla_tuf_expiry_seconds',
    help: 'Seconds until the latest image repository metadata of each role expires (negative once expired)',
    labelNames: ['role'] as const,
    registers: [registry],
    async collect() {
      const now = clock.now().getTime();
      const timestamp = await image.readFile('timestamp.json');
      const expiries = {
        root: (await image.root())?.signed.expires,
        targets: (await image.targets())?.signed.expires,
        timestamp: timestamp && parseMetadata('timestamp', timestamp).signed.expires,
      };
      for (const [role, expires] of Object.entries(expiries)) {
        if (expires !== undefined) this.set({ role }, Math.floor((Date.parse(expires) - now) / 1000));
      }
    },
  });
  new Gauge({
    name: 'flotilla_tuf_offline_expiry_warnings',
    help: 'Offline-signed roles (root, targets) that expire within the warning window; renew with `flotilla keys renew`',
    registers: [registry],
    async collect() {
      this.set((await image.expiryWarnings(clock.now())).length);
    },
  });
}
