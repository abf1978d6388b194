/**
 * The rollouts module (docs/rollouts.md): staged, behaviour-gated delivery of a release. The engine
 * keeps its state in the database only; routes and engine composed by `buildApp`.
 */
import type { FastifyInstance } from 'fastify';
import type { DeployServices } from '../deployments/index.js';
import { RolloutEngine } from './engine.js';
import { registerRolloutRoutes } from './routes.js';

export { RolloutEngine, CRASH_LOOP_RESTARTS, retryDelayMs } from './engine.js';
export { parseWindow, windowOpen } from './window.js';
export { waveSizes } from './waves.js';

export interface RolloutsOptions {
  services: DeployServices;
  /** How often every active rollout is looked at besides the nudges (default 1 s). */
  tickMs?: number;
}

/** Registers the routes and starts the engine; it stops when the app closes. */
export function registerRollouts(app: FastifyInstance, opts: RolloutsOptions): RolloutEngine {
  const svc = opts.services;
  const engine = new RolloutEngine(svc, { tickMs: opts.tickMs ?? 1000 });
  registerRolloutRoutes(app, { deploy: svc, engine });
  // A device's report may move it on in a rollout: look at once rather than at the next tick.
  svc.events.subscribe(
    (e) => e.type.startsWith('device.update.') || e.type === 'device.app.status',
    (e) => engine.nudge('deviceId' in e ? e.deviceId : undefined),
  );
  app.addHook('onReady', (done) => {
    engine.start();
    done();
  });
  app.addHook('preClose', async () => {
    await engine.stop();
  });
  return engine;
}
