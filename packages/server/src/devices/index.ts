/**
 * The device side of the server: registration keys, enrollment, device tokens, state polling,
 * inventory, the operator's devices API and the WebSocket gateway. `buildApp` calls
 * `registerDeviceApi` after the operator auth hooks.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { registerEnrollRoutes } from './enroll/routes.js';
import { startCleaner } from './maintenance.js';
import { registerDeviceRoutes } from './manage/routes.js';
import { createDeviceMetrics } from './metrics.js';
import { LAST_SEEN_FLUSH_MS, Presence } from './presence.js';
import type { EventBus } from '../events/bus.js';
import { registerRegistrationKeyRoutes } from './regkeys/routes.js';
import type { DeviceRuntime } from './runtime.js';
import { registerStateRoutes } from './state/routes.js';
import { createDeviceAuthenticator } from './tokens/authenticate.js';
import type { DeviceAuthenticator } from './tokens/authenticate.js';
import { registerTokenRoutes } from './tokens/routes.js';
import { registerGateway } from './ws/gateway.js';

export { compileFilter, FILTER_SELECTORS } from './rsql/translate.js';
export type { FilterContext } from './rsql/translate.js';
export { createDeviceAuthenticator, requireAccepted, reuseIfTold } from './tokens/authenticate.js';
export type { DeviceAuth, DeviceAuthenticator } from './tokens/authenticate.js';
export type { DeviceRuntime } from './runtime.js';
export { agentFrame } from './ws/frames.js';

export interface DeviceApi {
  runtime: DeviceRuntime;
  /** The one device authenticator of the app (device tokens), for every route devices call. */
  auth: DeviceAuthenticator;
}

/** Registers the device gateway and the device-management API; returns the shared runtime. */
export async function registerDeviceApi(
  app: FastifyInstance,
  ctx: ServerContext,
  events?: EventBus,
): Promise<DeviceApi> {
  const presence = new Presence(ctx, LAST_SEEN_FLUSH_MS, events);
  const rt: DeviceRuntime = {
    ctx,
    presence,
    metrics: createDeviceMetrics(ctx, presence),
    ...(events !== undefined && { events }),
  };
  const auth = createDeviceAuthenticator(rt);
  await registerGateway(app, rt, auth);
  registerRegistrationKeyRoutes(app, ctx);
  registerEnrollRoutes(app, rt);
  registerTokenRoutes(app, rt);
  registerStateRoutes(app, rt, auth);
  registerDeviceRoutes(app, rt);

  presence.start();
  const cleaner = startCleaner(ctx);
  // preClose, not onClose: onClose hooks run last-registered-first, so buildApp's database close
  // would run before a final last-seen flush registered here. The gateway's own preClose (registered
  // earlier, so run earlier) has already closed the device connections.
  app.addHook('preClose', async () => {
    await cleaner.stop();
    await presence.stop();
  });
  return { runtime: rt, auth };
}
