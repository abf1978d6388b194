/**
 * Node-only plumbing shared by store, server, agent and cli (never imported by the web dashboard:
 * the contract lives in @flotilla/protocol). One copy of each piece; named exports only.
 */

export { defineConfig, flagProperty } from './config/define.js';
export type { ConfigCliOption, ConfigDefinition, ConfigKeySpec } from './config/define.js';
export { coerceConfigField, envNameOf, showConfigValue } from './config/fields.js';
export type { Coerced, ConfigFieldKind, ConfigFieldSpec } from './config/fields.js';
export { ConfigCollector, readYamlConfigFile } from './config/file.js';
export {
  deviceIdFromPublicKey,
  enrollmentMessage,
  generateEd25519,
  hashSecret,
  importPublicKey,
  publicKeyOfPrivatePem,
  randomId,
  randomSecret,
  SECRET_PREFIX,
  sha256Hex,
  signMessage,
  tokenChallengeMessage,
  verifyMessage,
} from './crypto.js';
export type { Ed25519KeyPair } from './crypto.js';
export { DATA_DIR_LOCK_FILE, dataDirLockHolder, lockDataDir } from './data-dir-lock.js';
export type { DataDirLock, DataDirLockHolder } from './data-dir-lock.js';
export { createFileExclusive, writeFileAtomic, writeFileAtomicSync } from './fs/atomic.js';
export type { AtomicFileIo, AtomicFileIoSync, WriteFileAtomicOptions } from './fs/atomic.js';
export {
  checkSecretOpening,
  openSealedSecret,
  sealSecret,
  secretCommitment,
  secretNonce,
} from './secrets.js';
export type { SealContext } from './secrets.js';
export { newImageRoot } from './tuf/image-root.js';
export { readKeyFile, writeKeyFile } from './tuf/key-file.js';
export type { LoadedKey } from './tuf/key-file.js';
export { memorySigner, publicKeyOfTufKey, tufKeyFromPublicKey } from './tuf/keys.js';
export type { Signer } from './tuf/keys.js';
export {
  metaFileFor,
  newRoot,
  newSnapshot,
  newTargets,
  newTimestamp,
  parseMetadata,
  serializeMetadata,
  signedBytes,
  signMetadata,
  TOP_LEVEL_ROLES,
  TUF_SPEC_VERSION,
  tufExpires,
} from './tuf/metadata.js';
export type { AnyMetadata, RoleKeys, TopLevelRole } from './tuf/metadata.js';
export {
  TufCryptoError,
  TufLengthOrHashMismatchError,
  TufModelRepositoryError,
  TufModelValueError,
  TufUnsignedMetadataError,
} from './tuf/model-errors.js';
export { readReleaseTarget, releaseTarget } from './tuf/release-target.js';
export {
  GATEWAY_ROLE,
  gatewayPathPattern,
  isGatewayPath,
  readGatewayDelegation,
  withGatewayDelegation,
} from './tuf/gateway-delegation.js';
export type { GatewayDelegation } from './tuf/gateway-delegation.js';
export { nextRoot, nextTargets, roleKeysOf, verifyRootSuccessor, verifySignedBy } from './tuf/successors.js';

// The bounded JSON HTTP client with the error envelope (agent and CLI).
export { JsonHttpClient, checkBody } from './http/json-client.js';
export type {
  FetchFn,
  HttpMethod,
  JsonHttpClientOptions,
  JsonRequest,
  JsonRequestBase,
  JsonResponse,
  QueryValue,
  RawJsonResponse,
} from './http/json-client.js';

// Bounded in-memory caches.
export { WeightedLru } from './cache/weighted-lru.js';
export type { WeightedLruOptions } from './cache/weighted-lru.js';

// Concurrency limits and in-process serialisation.
export { KeyedSerialQueue, concurrencyLimit, serialQueue } from './concurrency/limit.js';
export type { Limit } from './concurrency/limit.js';
export { readAhead } from './concurrency/read-ahead.js';
export { timeSlices } from './concurrency/time-slice.js';

// Worker threads.
export { WorkerPool, ownedBuffers, poolWorkerData, transferring } from './workers/pool.js';
export type { WorkerPoolOptions } from './workers/pool.js';

// remote-access stream multiplexer (docs/remote-access.md)
export { MuxSession, MuxStream } from './mux/session.js';
export type { MuxChannel, MuxSessionOptions, MuxStreamSink } from './mux/session.js';
