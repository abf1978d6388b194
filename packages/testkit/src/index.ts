/** Helpers shared by tests only (no package's src/ imports this). Named exports only. */
export { deviceToken, enrollDevice } from './enroll.js';
export type { EnrolledDevice } from './enroll.js';
export { scriptedServer, sendJson } from './http.js';
export type { Recorded } from './http.js';
export { freePort } from './net.js';
export { relativeImports, sourceFiles } from './sources.js';
export { tempDir } from './tmp.js';
export type { CleanupContext } from './tmp.js';
export {
  containerToolsInstalled,
  importLayeredBusyboxImage,
  startLocalRegistry,
  startPrivateDockerd,
} from './containers.js';
export type { LocalRegistry, PrivateDockerd } from './containers.js';
export { dockerdAvailable, importBusyboxImage, startTestDockerd } from './dockerd.js';
export type { TestDockerd } from './dockerd.js';
