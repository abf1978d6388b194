/**
 * The deployments module: the one owner of assignments (service), its routes as an encapsulated
 * Fastify plugin, update reports, app actions and logs, and the director metadata kept in step
 * with `device_apps` (DirectorSync). Composed by `buildApp`.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { DeviceAuthenticator } from '../devices/index.js';
import { registerDeploymentRoutes } from './routes.js';
import type { DeployServices } from './service.js';

export { DirectorSync } from './director-sync.js';
export { deploy, deployStatus, deviceApps, getDeployment, sendAppAction } from './service.js';
export { DeploymentJobs } from './jobs.js';
export type { AssignedTo, JobServices } from './jobs.js';
export type { DeployServices } from './service.js';
export { recordReport } from './reports.js';
export { readAppLogs } from './logs.js';

export interface DeploymentsPluginOptions {
  services: DeployServices;
  /** The app's device authenticator (update reports come from devices). */
  deviceAuth: DeviceAuthenticator;
}

/** Deploy, deployment status, device apps, app actions and logs, and the devices' update reports. */
export const deploymentsPlugin: FastifyPluginCallback<DeploymentsPluginOptions> = (app, opts, done) => {
  registerDeploymentRoutes(app, opts.services, opts.deviceAuth);
  done();
};
export { assignDevicesInTransaction, unassignInTransaction } from './assign.js';
export type { AssignedDevice } from './assign.js';
