/**
 * @flotilla/web: the operator dashboard (a React single-page app, built with Vite into dist/app)
 * and what a server needs to serve it. Named exports only.
 */
export { dashboardDir, INITIAL_JS_BUDGET_BYTES } from './paths.js';
export { CONTENT_SECURITY_POLICY, DashboardFiles, RESERVED_PREFIXES } from './serve.js';
export type { DashboardResponse } from './serve.js';
