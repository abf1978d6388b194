export { SecretVault, SECRETS_KEY_FILE } from './vault.js';
export type { SecretPlace } from './vault.js';
export { registerSecretRoutes } from './routes.js';
export {
  missingError,
  missingSecrets,
  putSecrets,
  revealSecret,
  sealSecretsForDevice,
  storedSecretNames,
} from './service.js';
