export { buildProgram, runCli } from './program.js';
export type { CliIo, SignalSource, TextSink } from './io.js';
export { processIo } from './io.js';
export { ExitCode } from './exit-codes.js';
export { ApiClient } from './api/client.js';
export type { ApiClientOptions } from './api/client.js';
export { normalizeServerUrl } from './api/server-url.js';
export { resolveConfigDir } from './config/paths.js';
export {
  readCredentials,
  writeCredentials,
  deleteCredentials,
  credentialsPath,
} from './config/credentials.js';
export type { Credentials } from './config/credentials.js';
export { handleShutdownSignals } from './process/signals.js';
export { stageImages, readImagesIndex, normalizeReference, IMAGES_DIR } from './push/container-images.js';
export type { ImageSourceOptions, ImagesIndex, ImageManifest } from './push/container-images.js';
