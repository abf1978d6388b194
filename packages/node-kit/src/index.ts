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
