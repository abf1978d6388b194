import type { ServerContext } from '../context.js';
import type { EventBus } from '../events/bus.js';
import type { DeviceMetrics } from './metrics.js';
import type { Presence } from './presence.js';
import type { ListContext } from './manage/list.js';

/** What the device services share: the server context, presence on this server, metrics. */
export interface DeviceRuntime {
  ctx: ServerContext;
  presence: Presence;
  metrics: DeviceMetrics;
  /** The app's domain events (enrollment and status changes are emitted on it). */
  events?: EventBus;
}

/** The context for building device views at this instant. */
export function viewContext(rt: DeviceRuntime): ListContext {
  return {
    db: rt.ctx.db,
    dialect: rt.ctx.dialect,
    presence: rt.presence,
    now: rt.ctx.clock.now(),
    offlineAfterMs: rt.ctx.config.offlineAfterMs,
  };
}
