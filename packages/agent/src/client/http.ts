/** The agent's JSON HTTP client: node-kit's bounded client with the agent's limits and user agent. */
import { FLOTILLA_VERSION } from '@flotilla/protocol';
import { JsonHttpClient } from '@flotilla/node-kit';
import type { FetchFn } from '@flotilla/node-kit';

export function agentHttpClient(
  serverUrl: string,
  config: { requestTimeoutMs: number; maxResponseBytes: number },
  fetch: FetchFn = globalThis.fetch,
): JsonHttpClient {
  return new JsonHttpClient({
    baseUrl: serverUrl,
    fetch,
    timeoutMs: config.requestTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
    userAgent: `flotilla-agent/${FLOTILLA_VERSION}`,
  });
}
