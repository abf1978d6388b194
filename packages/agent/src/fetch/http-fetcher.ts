/**
 * Fetches objects from the server: batches through the pack endpoint (one stream, compressed as a
 * whole), and what a cut pack left over through the immutable per-object URLs, resumed with Range
 * from a partial file that survives agent restarts. A release's tree objects can come in one
 * request (the tree-pack endpoint) before the level walk that would otherwise ask level by level.
 * Concurrency and a shared token bucket bound the load; every object is verified by hash before it
 * is stored.
 *
 * This class only composes: the transport (transport.ts) and one client per endpoint
 * (pack-client, object-client, tree-pack-client, delta-client).
 */
import { mkdir } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import type { DeltaPair, PackCodec } from '@flotilla/protocol';
import { DEFAULT_MAX_DELTA_FILE_BYTES } from '@flotilla/store';
import type { DeltaRecord } from '@flotilla/store';
import { DeltaClient } from './delta-client.js';
import type {
  DeltaFetcher,
  FetchRequestOptions,
  FetchSink,
  ObjectFetcher,
  TreeFetchOptions,
  TreeFetcher,
} from './fetcher.js';
import { ObjectClient } from './object-client.js';
import { PackClient } from './pack-client.js';
import type { BucketClock } from './token-bucket.js';
import { Transport, RETRYABLE } from './transport.js';
import { TreePackClient } from './tree-pack-client.js';

export interface HttpFetcherOptions {
  /** Server base URL (`https://host[:port][/prefix]`). */
  baseUrl: string;
  /** Request headers, e.g. the device token; called per request. */
  headers: () => Promise<Record<string, string>>;
  /** Directory for partial per-object downloads (resumed with Range). */
  partialDir: string;
  /** Parallel requests (default 4). */
  concurrency?: number;
  /** Bandwidth limit in bytes per second over all requests; 0 = unlimited (default). */
  bytesPerSecond?: number;
  /** The bandwidth limit's clock and sleep (default: the real ones); tests record the waits. */
  bandwidthClock?: BucketClock;
  /** Ids per pack request (default 1000). */
  batchSize?: number;
  /**
   * Codec asked of the pack endpoint (default `frames`: the server's stored frames, stored as they
   * come; `zstd` from a server that refuses it). Tree packs use it too, but for `frames`: `zstd`.
   */
  packCodec?: PackCodec;
  /** Largest object accepted, bytes (default 64 MiB). */
  maxObjectBytes?: number;
  /** Largest delta record accepted, bytes (default 128 MiB, the largest file deltas are made for). */
  maxDeltaBytes?: number;
  /** Attempts per object over per-object GETs (default 4). */
  attempts?: number;
  /** Request timeout before the first byte (default 30 s). */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
}

export class HttpFetcher implements ObjectFetcher, DeltaFetcher, TreeFetcher {
  private readonly packs: PackClient;
  private readonly objects: ObjectClient;
  private readonly trees: TreePackClient;
  private readonly deltas: DeltaClient;

  constructor(private readonly options: HttpFetcherOptions) {
    const transport = new Transport(options);
    const codec = options.packCodec ?? 'frames';
    const maxObjectBytes = options.maxObjectBytes ?? 64 * 1024 * 1024;
    this.packs = new PackClient(transport, codec, maxObjectBytes);
    this.objects = new ObjectClient(transport, options.partialDir, maxObjectBytes, options.attempts ?? 4);
    // Tree objects are small: compressed together they take far less than framed one by one.
    this.trees = new TreePackClient(transport, codec === 'frames' ? 'zstd' : codec, maxObjectBytes);
    this.deltas = new DeltaClient(transport, options.maxDeltaBytes ?? DEFAULT_MAX_DELTA_FILE_BYTES);
  }

  async fetch(ids: readonly string[], sink: FetchSink, options: FetchRequestOptions = {}): Promise<void> {
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return;
    await mkdir(this.options.partialDir, { recursive: true }).catch((cause: unknown) => {
      throw new FlotillaError('FLT_IO', `cannot create ${this.options.partialDir}`, { cause });
    });
    const left = new Set(wanted);
    if (!this.packs.unsupported) {
      const size = this.options.batchSize ?? 1000;
      const batches: string[][] = [];
      for (let i = 0; i < wanted.length; i += size) batches.push(wanted.slice(i, i + size));
      await this.pool(batches, async (batch) => {
        try {
          await this.packs.fetch(batch, sink, options, (id) => left.delete(id));
        } catch (error) {
          // What a cut or refused pack left over is fetched object by object below; verified records stay.
          if (error instanceof FlotillaError && !RETRYABLE.has(error.code)) throw error;
        }
      });
    }
    await this.pool([...left], (id) => this.objects.fetch(id, sink, options));
  }

  fetchDeltas(
    pairs: readonly DeltaPair[],
    onRecord: (record: DeltaRecord) => Promise<void>,
    options: FetchRequestOptions = {},
  ): Promise<boolean> {
    return this.deltas.fetchDeltas(pairs, onRecord, options);
  }

  fetchTree(
    root: string,
    have: readonly string[],
    sink: FetchSink,
    options: TreeFetchOptions = {},
  ): Promise<boolean> {
    return this.trees.fetchTree(root, have, sink, options);
  }

  private async pool<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < items.length) await work(items[next++] as T);
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 4, items.length) }, worker));
  }
}
