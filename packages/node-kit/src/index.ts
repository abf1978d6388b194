/**
 * Node-only plumbing shared by store, server, agent and cli (never imported by the web dashboard:
 * the contract lives in @flotilla/protocol). One copy of each piece; named exports only.
 */
export const NODE_KIT = '@flotilla/node-kit';

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

// Worker threads.
export { WorkerPool, ownedBuffers, poolWorkerData, transferring } from './workers/pool.js';
export type { WorkerPoolOptions } from './workers/pool.js';
