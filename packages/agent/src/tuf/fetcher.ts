/**
 * The fetcher tuf-js downloads metadata with (its public `Fetcher` interface): the agent's fetch on node:http (util/node-fetch.ts) with a
 * timeout, optional extra headers (the device token), no retries (the agent's sync loop retries),
 * every download bounded by its maximum length while streaming, and what it saw recorded for error
 * mapping (failure-log.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fetcher } from 'tuf-js';
// tuf-js's Fetcher contract: a 403/404 on `N.root.json` ends the walk over root versions only as
// this class (updater.js loadRoot), which tuf-js 5 does not export from its index.
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { fetchOnNode } from '../util/node-fetch.js';
import { stepOfUrl } from './failure-log.js';
import type { FailureLog } from './failure-log.js';

export interface FetchOptions {
  /** Per-request timeout in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Extra request headers, e.g. `authorization` with the device token. */
  headers?: () => Record<string, string>;
}

/** A download longer than its declared or maximum length, cut off there. */
export class MetadataTooLongError extends Error {
  constructor(url: string, maxLength: number) {
    super(`GET ${url}: more than ${maxLength} bytes`);
    this.name = 'MetadataTooLongError';
  }
}

export class RecordingFetcher implements Fetcher {
  constructor(
    private readonly failures: FailureLog,
    private readonly opts: FetchOptions = {},
  ) {}

  async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    const step = stepOfUrl(url);
    try {
      const bytes = await this.download(url, maxLength);
      if (step) this.failures.record({ kind: 'downloaded', step, bytes });
      return bytes;
    } catch (error) {
      if (step)
        this.failures.record({
          kind: 'fetch-failed',
          step,
          error,
          tooLong: error instanceof MetadataTooLongError,
          ...(error instanceof DownloadHTTPError && { status: error.statusCode }),
        });
      throw error;
    }
  }

  /** Target files (tuf-js `downloadTarget`; the agent fetches its objects itself). */
  async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
    const bytes = await this.downloadBytes(url, maxLength);
    const dir = await mkdtemp(join(tmpdir(), 'flt-tuf-'));
    try {
      const file = join(dir, 'download');
      await writeFile(file, bytes);
      return await handler(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async download(url: string, maxLength: number): Promise<Buffer> {
    const response = await fetchOnNode(url, {
      headers: { accept: 'application/json', ...this.opts.headers?.() },
      timeoutMs: this.opts.timeoutMs ?? 30_000,
      redirect: 'error',
    });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw httpError(url, response.status);
    }
    const pieces: Uint8Array[] = [];
    let total = 0;
    // Leaving the loop early (too long) ends the body's stream.
    for await (const value of response.body as unknown as AsyncIterable<Uint8Array>) {
      total += value.byteLength;
      if (total > maxLength) throw new MetadataTooLongError(url, maxLength);
      pieces.push(value);
    }
    return Buffer.concat(pieces);
  }
}

/**
 * tuf-js's error for an HTTP status, without a stack trace: a 404 of `N.root.json` ends every
 * root walk (twice per refresh of both repositories), and the stack would only show this file.
 */
function httpError(url: string, status: number): DownloadHTTPError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new DownloadHTTPError(`GET ${url}: HTTP ${status}`, status);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
