export * from './errors.js';
export * from './duration.js';
export * from './crypto.js';
export * from './secrets.js';
export * from './api/common.js';
export * from './api/device.js';
export * from './api/ws.js';
export * from './api/operator.js';
export * from './api/releases.js';
export * from './api/deltas.js';
export * from './api/runtime-config.js';
export * from './api/images.js';
export { Type } from '@sinclair/typebox';
export type { Static, TSchema } from '@sinclair/typebox';

/** The version every Flotilla package reports (agent inventory, server info). */
export const FLOTILLA_VERSION = '0.1.0';
export * from './tuf/index.js';
export * from './config/fields.js';
export * from './config/file.js';
export * from './fs.js';
export * from './json-depth.js';
export * from './data-dir-lock.js';
