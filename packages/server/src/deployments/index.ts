export { registerDeploymentRoutes } from './routes.js';
export { deploy, deployStatus, deviceApps, sendAppAction } from './service.js';
export type { DeployServices } from './service.js';
export { recordReport } from './reports.js';
