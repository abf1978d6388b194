/**
 * The agent's JSON HTTP client: node-kit's bounded client with the agent's limits and user agent, on
 * node:http / node:https by default (node-fetch.ts: the idle agent does not load undici).
 */
import { FLOTILLA_VERSION } from '@flotilla/protocol';
import { JsonHttpClient } from '@flotilla/node-kit';
import type { FetchFn } from '@flotilla/node-kit';
import { nodeFetch } from '../util/node-fetch.js';

export function agentHttpClient(
  serverUrl: string,
  config: { requestTimeoutMs: number; maxResponseBytes: number },
  fetch: FetchFn = nodeFetch,
): JsonHttpClient {
  return new JsonHttpClient({
    baseUrl: serverUrl,
    fetch,
    timeoutMs: config.requestTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
    userAgent: `flotilla-agent/${FLOTILLA_VERSION}`,
  });
}
