/**
 * An ObjectSink that uploads while the tree is being built. Objects are gathered into batches
 * (bounded in count and bytes); each full batch is checked with `missing` and only what the server
 * lacks is packed, compressed and uploaded. One batch uploads while the next is being gathered, so
 * memory stays within about two batches whatever the size of the tree.
 */
import { FlotillaError, MAX_IDS_PER_REQUEST } from '@flotilla/protocol';
import type { ObjectSink } from '@flotilla/store';
import { compressPack, encodePack, UPLOAD_CODEC } from './pack.js';
import type { PackRecord } from './pack.js';
import type { ObjectTransport } from './transport.js';

export interface UploadStats {
  /** File content chunks produced (each distinct id once). */
  chunks: number;
  /** Chunks and tree objects produced (each distinct id once). */
  objects: number;
  /** Their uncompressed bytes. */
  bytes: number;
  /** Objects the server lacked and received. */
  uploadedObjects: number;
  /** Uncompressed bytes of those objects. */
  uploadedBytes: number;
  /** Compressed bytes sent. */
  wireBytes: number;
}

export interface UploadSinkOptions {
  transport: ObjectTransport;
  /** Uncompressed bytes per batch; default 8 MiB. */
  maxBatchBytes?: number;
  /** Ids per batch; default and maximum the protocol's MAX_IDS_PER_REQUEST. */
  maxBatchIds?: number;
  /** Called after every object and every upload, with the running totals. */
  onProgress?: (stats: Readonly<UploadStats>) => void;
}

export const DEFAULT_BATCH_BYTES = 8 * 1024 * 1024;

export class UploadSink implements ObjectSink {
  readonly stats: UploadStats = {
    chunks: 0,
    objects: 0,
    bytes: 0,
    uploadedObjects: 0,
    uploadedBytes: 0,
    wireBytes: 0,
  };
  private batch: PackRecord[] = [];
  private batchBytes = 0;
  private inFlight: Promise<void> = Promise.resolve();
  private lastObject: { id: string; length: number } | undefined;
  private readonly maxBatchBytes: number;
  private readonly maxBatchIds: number;

  constructor(private readonly options: UploadSinkOptions) {
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_BATCH_BYTES;
    this.maxBatchIds = Math.min(options.maxBatchIds ?? MAX_IDS_PER_REQUEST, MAX_IDS_PER_REQUEST);
  }

  // The server is asked in batches instead; the builder already skips ids it produced before.
  has(): Promise<boolean> {
    return Promise.resolve(false);
  }

  putChunk(id: string, bytes: Uint8Array): Promise<void> {
    this.stats.chunks++;
    return this.add(id, bytes);
  }

  putObject(id: string, bytes: Uint8Array): Promise<void> {
    this.lastObject = { id, length: bytes.length };
    return this.add(id, bytes);
  }

  /**
   * Byte length of the root directory object, the release target's length. The builder puts the
   * root last (a directory after everything below it), so it is the last object received.
   */
  rootLength(rootId: string): number {
    if (this.lastObject?.id !== rootId) {
      throw new FlotillaError('FLT_INTERNAL', `the tree builder did not end with the root object ${rootId}`);
    }
    return this.lastObject.length;
  }

  /** Uploads what is left and waits for every upload; rethrows the first failure. */
  async finish(): Promise<UploadStats> {
    await this.flush();
    await this.inFlight;
    return this.stats;
  }

  private async add(id: string, bytes: Uint8Array): Promise<void> {
    this.stats.objects++;
    this.stats.bytes += bytes.length;
    this.batch.push({ id, bytes });
    this.batchBytes += bytes.length;
    this.options.onProgress?.(this.stats);
    if (this.batchBytes >= this.maxBatchBytes || this.batch.length >= this.maxBatchIds) await this.flush();
  }

  private async flush(): Promise<void> {
    // Wait for the previous upload first: at most one batch in flight and one being gathered.
    await this.inFlight;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.inFlight = this.send(batch);
    // Marked handled here; the failure is rethrown by the next flush or by finish().
    this.inFlight.catch(() => undefined);
  }

  private async send(batch: readonly PackRecord[]): Promise<void> {
    const missing = new Set(await this.options.transport.missing(batch.map((r) => r.id)));
    const records = batch.filter((r) => missing.has(r.id));
    if (records.length === 0) return;
    const pack = await compressPack(encodePack(records));
    await this.options.transport.upload(pack, UPLOAD_CODEC);
    this.stats.uploadedObjects += records.length;
    this.stats.uploadedBytes += records.reduce((sum, r) => sum + r.bytes.length, 0);
    this.stats.wireBytes += pack.length;
    this.options.onProgress?.(this.stats);
  }
}
