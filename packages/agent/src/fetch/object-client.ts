/**
 * The per-object endpoint (`ObjectRoutes.object`): one object's frame at its immutable URL, resumed
 * with Range from a partial file that survives agent restarts, a few attempts on network errors.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FRAME_CONTENT_TYPE, FlotillaError, ObjectRoutes } from '@flotilla/protocol';
import { FRAME_HEADER_LENGTH } from '@flotilla/store';
import type { FetchRequestOptions, FetchSink } from './fetcher.js';
import { getObjectFrame } from './object-get.js';
import { RETRYABLE } from './transport.js';
import type { Transport } from './transport.js';

export class ObjectClient {
  constructor(
    private readonly transport: Transport,
    /** Directory for partial per-object downloads. */
    private readonly partialDir: string,
    private readonly maxObjectBytes: number,
    /** Attempts per object. */
    private readonly attempts: number,
  ) {}

  /** Fetches the object `id` into `sink`, verified by hash there. */
  async fetch(id: string, sink: FetchSink, options: FetchRequestOptions): Promise<void> {
    const partial = join(this.partialDir, id);
    let lastError: unknown = null;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (options.signal?.aborted) break;
      try {
        await this.download(id, partial, options);
        const frame = await readFile(partial);
        try {
          await sink.putFrame(id, frame);
        } finally {
          await rm(partial, { force: true });
        }
        return;
      } catch (error) {
        lastError = error;
        if (error instanceof FlotillaError && !RETRYABLE.has(error.code)) throw error;
      }
    }
    throw new FlotillaError('FLT_NETWORK', `could not fetch object ${id} after ${this.attempts} attempts`, {
      details: { id },
      cause: lastError,
    });
  }

  /** GETs the frame of `id` into `partial`, continuing from what a cut transfer left there. */
  private async download(id: string, partial: string, options: FetchRequestOptions): Promise<void> {
    const have = (await stat(partial).catch(() => null))?.size ?? 0;
    try {
      await getObjectFrame({
        url: this.transport.url(ObjectRoutes.object.replace(':id', id)),
        headers: { accept: FRAME_CONTENT_TYPE, ...(await this.transport.headers()) },
        have,
        partial,
        limitBytes: this.maxObjectBytes + FRAME_HEADER_LENGTH,
        timeoutMs: this.transport.timeoutMs,
        bucket: this.transport.bucket,
        ...(options.signal && { signal: options.signal }),
        ...(options.onWireBytes && { onWireBytes: options.onWireBytes }),
      });
    } catch (error) {
      if (error instanceof FlotillaError && (error.details as { restart?: boolean } | undefined)?.restart)
        await rm(partial, { force: true });
      throw error;
    }
  }
}
