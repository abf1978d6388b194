/**
 * The HTTP fetcher tuf-js downloads metadata with: Node's fetch with a timeout, optional extra
 * headers (the device token), no retries (the agent's sync loop retries), and every failure recorded
 * for error mapping. tuf-js's BaseFetcher enforces the maximum length while streaming.
 */
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { stepOfUrl } from './failure-log.js';
import type { FailureLog } from './failure-log.js';

export interface FetchOptions {
  /** Per-request timeout in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Extra request headers, e.g. `authorization` with the device token. */
  headers?: () => Record<string, string>;
}

export class RecordingFetcher extends BaseFetcher {
  constructor(
    private readonly failures: FailureLog,
    private readonly opts: FetchOptions = {},
  ) {
    super();
  }

  override async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    try {
      return await super.downloadBytes(url, maxLength);
    } catch (error) {
      const step = stepOfUrl(url);
      if (step) this.failures.record({ step, source: 'fetch', error });
      throw error;
    }
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await fetch(url, {
      headers: { accept: 'application/json', ...this.opts.headers?.() },
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      redirect: 'error',
    });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}
