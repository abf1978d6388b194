/**
 * Fetches objects from the server: batches through the pack endpoint (one stream, compressed as a
 * whole), and what a cut pack left over through the immutable per-object URLs, resumed with Range
 * from a partial file that survives agent restarts. A release's tree objects can come in one
 * request (the tree-pack endpoint) before the level walk that would otherwise ask level by level.
 * Concurrency and a shared token bucket bound the load; every object is verified by hash before it
 * is stored.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import type { ReadableStream as NodeWebStream } from 'node:stream/web';
import { createBrotliDecompress, createGunzip } from 'node:zlib';
import {
  FRAME_CONTENT_TYPE,
  FlotillaError,
  MAX_DELTA_PAIRS_PER_REQUEST,
  MAX_TREE_PACK_HAVE,
  ObjectRoutes,
  PACK_CODEC_HEADER,
} from '@flotilla/protocol';
import type { DeltaPair, PackCodec } from '@flotilla/protocol';
import {
  DEFAULT_MAX_DELTA_FILE_BYTES,
  FRAME_HEADER_LENGTH,
  deltaPairKey,
  parseObject,
  readDeltaPack,
} from '@flotilla/store';
import type { DeltaRecord } from '@flotilla/store';
import { DecompressStream } from 'zstd-napi';
import type {
  DeltaFetcher,
  FetchRequestOptions,
  FetchSink,
  ObjectFetcher,
  TreeFetchOptions,
  TreeFetcher,
} from './fetcher.js';
import { getObjectFrame } from './object-get.js';
import { readPack } from './pack-reader.js';
import { TokenBucket } from './token-bucket.js';
import type { BucketClock } from './token-bucket.js';

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
  /** Whole-stream codec asked of the pack endpoint (default zstd). */
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
  private readonly bucket: TokenBucket;
  private packUnsupported = false;
  private deltasUnsupported = false;
  private treesUnsupported = false;

  constructor(private readonly options: HttpFetcherOptions) {
    this.bucket = new TokenBucket(options.bytesPerSecond ?? 0, options.bandwidthClock);
  }

  async fetch(ids: readonly string[], sink: FetchSink, options: FetchRequestOptions = {}): Promise<void> {
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return;
    await mkdir(this.options.partialDir, { recursive: true }).catch((cause: unknown) => {
      throw new FlotillaError('FLT_IO', `cannot create ${this.options.partialDir}`, { cause });
    });
    const left = new Set(wanted);
    if (!this.packUnsupported) {
      const size = this.options.batchSize ?? 1000;
      const batches: string[][] = [];
      for (let i = 0; i < wanted.length; i += size) batches.push(wanted.slice(i, i + size));
      await this.pool(batches, async (batch) => {
        try {
          await this.fetchPack(batch, sink, options, (id) => left.delete(id));
        } catch (error) {
          // What a cut or refused pack left over is fetched object by object below; verified records stay.
          if (error instanceof FlotillaError && !RETRYABLE.has(error.code)) throw error;
        }
      });
    }
    await this.pool([...left], (id) => this.fetchObject(id, sink, options));
  }

  async fetchDeltas(
    pairs: readonly DeltaPair[],
    onRecord: (record: DeltaRecord) => Promise<void>,
    options: FetchRequestOptions = {},
  ): Promise<boolean> {
    if (this.deltasUnsupported || pairs.length === 0) return !this.deltasUnsupported;
    const batches: DeltaPair[][] = [];
    for (let i = 0; i < pairs.length; i += MAX_DELTA_PAIRS_PER_REQUEST)
      batches.push(pairs.slice(i, i + MAX_DELTA_PAIRS_PER_REQUEST));
    // One batch at a time: a delta request makes the server compute, and records are large.
    for (const batch of batches) {
      if (this.deltasUnsupported) return false;
      await this.fetchDeltaBatch(batch, onRecord, options);
    }
    return !this.deltasUnsupported;
  }

  async fetchTree(
    root: string,
    have: readonly string[],
    sink: FetchSink,
    options: TreeFetchOptions = {},
  ): Promise<boolean> {
    if (this.treesUnsupported) return false;
    const haveRoots = [...new Set(have)].slice(0, MAX_TREE_PACK_HAVE);
    let sinkError: { error: unknown } | null = null;
    const store = async (id: string, bytes: Uint8Array) => {
      try {
        await sink.putChunk(id, bytes);
      } catch (error) {
        sinkError = { error };
        throw error;
      }
    };
    try {
      return await this.fetchTreePack(root, haveRoots, store, options);
    } catch (error) {
      if (sinkError) throw (sinkError as { error: unknown }).error;
      if (options.signal?.aborted) throw error;
      options.onFallback?.(
        error instanceof FlotillaError
          ? error
          : new FlotillaError('FLT_NETWORK', `tree pack of ${root} failed`, { cause: error }),
      );
      return false;
    }
  }

  /** One tree-pack request; false when the server has no such route. */
  private async fetchTreePack(
    root: string,
    have: string[],
    store: (id: string, bytes: Uint8Array) => Promise<void>,
    options: FetchRequestOptions,
  ): Promise<boolean> {
    const codec = this.options.packCodec ?? 'zstd';
    const { response, idle } = await this.postJson(
      ObjectRoutes.treePack,
      { root, have, codec },
      options.signal,
    );
    try {
      if (await this.routeMissing(response, `the server lacks tree ${root}`)) {
        this.treesUnsupported = true; // an older server: the level walk, and no more asking
        return false;
      }
      await this.expectOk(response, ObjectRoutes.treePack);
      const wire = this.throttled(response, options, idle);
      const records = decompress(wire, response.headers.get(PACK_CODEC_HEADER) ?? 'identity');
      // Only what the tree names is taken: the root, then the children of each directory received
      // (the server sends a directory before what it names).
      const expected = new Set([root]);
      await readPack(records, expected, this.maxObjectBytes(), async (id, bytes) => {
        for (const child of childIds(id, bytes)) expected.add(child);
        await store(id, bytes);
      });
      return true;
    } finally {
      idle.stop();
    }
  }

  private async fetchDeltaBatch(
    pairs: DeltaPair[],
    onRecord: (record: DeltaRecord) => Promise<void>,
    options: FetchRequestOptions,
  ): Promise<void> {
    const { response, idle } = await this.postJson(ObjectRoutes.deltas, { pairs }, options.signal);
    try {
      if (await this.routeMissing(response, 'the server lacks delta bases')) {
        this.deltasUnsupported = true; // an older server: chunks only, and no more asking
        return;
      }
      await this.expectOk(response, ObjectRoutes.deltas);
      const expected = new Set(pairs.map((p) => deltaPairKey(p.target, p.base)));
      const records = readDeltaPack(this.throttled(response, options, idle), {
        expected,
        maxPayloadBytes: this.options.maxDeltaBytes ?? DEFAULT_MAX_DELTA_FILE_BYTES,
      });
      for await (const record of records) await onRecord(record);
    } finally {
      idle.stop();
    }
  }

  private async fetchPack(
    ids: string[],
    sink: FetchSink,
    options: FetchRequestOptions,
    done: (id: string) => void,
  ): Promise<void> {
    const codec = this.options.packCodec ?? 'zstd';
    const { response, idle } = await this.postJson(ObjectRoutes.pack, { ids, codec }, options.signal);
    try {
      if (await this.routeMissing(response, 'the server lacks objects of this release')) {
        this.packUnsupported = true;
        throw new FlotillaError('FLT_NETWORK', `pack endpoint unavailable (HTTP ${response.status})`);
      }
      await this.expectOk(response, ObjectRoutes.pack);
      const wire = this.throttled(response, options, idle);
      const declared = response.headers.get(PACK_CODEC_HEADER) ?? 'identity';
      const records = decompress(wire, declared);
      await readPack(records, new Set(ids), this.maxObjectBytes(), async (id, bytes) => {
        await sink.putChunk(id, bytes);
        done(id);
      });
    } finally {
      idle.stop();
    }
  }

  private async fetchObject(id: string, sink: FetchSink, options: FetchRequestOptions): Promise<void> {
    const partial = join(this.options.partialDir, id);
    const attempts = this.options.attempts ?? 4;
    let lastError: unknown = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (options.signal?.aborted) break;
      try {
        await this.downloadFrame(id, partial, options);
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
    throw new FlotillaError('FLT_NETWORK', `could not fetch object ${id} after ${attempts} attempts`, {
      details: { id },
      cause: lastError,
    });
  }

  /** GETs the frame of `id` into `partial`, continuing from what a cut transfer left there. */
  private async downloadFrame(id: string, partial: string, options: FetchRequestOptions): Promise<void> {
    const have = (await stat(partial).catch(() => null))?.size ?? 0;
    const path = ObjectRoutes.object.replace(':id', id);
    try {
      await getObjectFrame({
        url: `${this.options.baseUrl}${path}`,
        headers: { accept: FRAME_CONTENT_TYPE, ...(await this.options.headers()) },
        have,
        partial,
        limitBytes: this.maxObjectBytes() + FRAME_HEADER_LENGTH,
        timeoutMs: this.options.timeoutMs ?? 30_000,
        bucket: this.bucket,
        ...(options.signal && { signal: options.signal }),
        ...(options.onWireBytes && { onWireBytes: options.onWireBytes }),
      });
    } catch (error) {
      if (error instanceof FlotillaError && (error.details as { restart?: boolean } | undefined)?.restart)
        await rm(partial, { force: true });
      throw error;
    }
  }

  /**
   * Sends a request whose timeout covers the wait for the response and then each silence in its
   * body (not the whole transfer: a large pack or delta on a slow or throttled link takes longer
   * than any fixed bound). The caller stops the watchdog when it is done with the body.
   */
  private async request(
    path: string,
    signal: AbortSignal | undefined,
    init: RequestInit,
  ): Promise<{ response: Response; idle: IdleWatchdog }> {
    const url = `${this.options.baseUrl}${path}`;
    const idle = new IdleWatchdog(this.options.timeoutMs ?? 30_000);
    try {
      const response = await (this.options.fetch ?? globalThis.fetch)(url, {
        ...init,
        headers: { ...(await this.options.headers()), ...(init.headers as Record<string, string>) },
        signal: signal ? AbortSignal.any([signal, idle.signal]) : idle.signal,
        redirect: 'error',
      });
      return { response, idle };
    } catch (cause) {
      idle.stop();
      throw new FlotillaError('FLT_NETWORK', `${init.method ?? 'GET'} ${url} failed`, {
        cause,
        details: { url },
      });
    }
  }

  private postJson(path: string, body: object, signal: AbortSignal | undefined) {
    return this.request(path, signal, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /**
   * Whether an answer says the route itself does not exist (an older server: 404, 405 or 501 with
   * no FLT_OBJECT_MISSING). A 404 FLT_OBJECT_MISSING (the server lacks what was asked for) is
   * thrown, `lacking` first in its message.
   */
  private async routeMissing(response: Response, lacking: string): Promise<boolean> {
    if (response.status !== 404 && response.status !== 405 && response.status !== 501) return false;
    const body = await response.text().catch(() => '');
    if (body.includes('"FLT_OBJECT_MISSING"'))
      throw new FlotillaError('FLT_OBJECT_MISSING', `${lacking}: ${body.slice(0, 300)}`, {
        details: { status: response.status },
      });
    return true;
  }

  private async expectOk(response: Response, path: string): Promise<void> {
    if (response.ok && response.body) return;
    const text = await response.text().catch(() => '');
    const code =
      response.status === 404
        ? 'FLT_OBJECT_MISSING'
        : response.status >= 500
          ? 'FLT_NETWORK'
          : 'FLT_BAD_REQUEST';
    throw new FlotillaError(code, `${path}: HTTP ${response.status}`, {
      details: { status: response.status, body: text.slice(0, 300) },
    });
  }

  private async *throttled(
    response: Response,
    options: FetchRequestOptions,
    idle: IdleWatchdog,
  ): AsyncGenerator<Uint8Array> {
    const body = Readable.fromWeb(response.body as unknown as NodeWebStream<Uint8Array>);
    for await (const piece of body as AsyncIterable<Buffer>) {
      // Time spent in our own bandwidth limit is not the server's silence.
      idle.stop();
      await this.bucket.take(piece.length, options.signal);
      idle.touch();
      options.onWireBytes?.(piece.length);
      yield piece;
    }
  }

  private maxObjectBytes(): number {
    return this.options.maxObjectBytes ?? 64 * 1024 * 1024;
  }

  private async pool<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < items.length) await work(items[next++] as T);
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 4, items.length) }, worker));
  }
}

/** Aborts a request when nothing arrives for `ms`: before the response, and between body pieces. */
class IdleWatchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ms: number) {
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Something arrived: the silence starts again from now. */
  touch(): void {
    this.stop();
    this.timer = setTimeout(() => this.controller.abort(this.timeoutError()), this.ms);
    this.timer.unref();
  }

  /** Not counting (waiting in our own bandwidth limit), or done. */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private timeoutError(): Error {
    const error = new Error(`nothing received for ${this.ms} ms`);
    error.name = 'TimeoutError';
    return error;
  }
}

/**
 * The object ids a directory object names (none for a file object). The bytes are verified against
 * their id already; a record that is not a valid tree object fails the tree pack (the walk then
 * fetches what is left).
 */
function childIds(id: string, bytes: Uint8Array): string[] {
  const object = parseObject(bytes, { expectedId: id });
  if (object.type !== 'dir') return [];
  return object.entries.flatMap((entry) => (entry.hash === undefined ? [] : [entry.hash]));
}

/** Errors worth another attempt: the network, a cut stream. Anything else (a bad hash, a refusal) is final. */
const RETRYABLE = new Set(['FLT_NETWORK', 'FLT_UNAVAILABLE']);

function decompress(wire: AsyncIterable<Uint8Array>, codec: string): AsyncIterable<Uint8Array> {
  const source = Readable.from(wire);
  const through = (decoder: NodeJS.ReadWriteStream) =>
    // pipeline, not pipe: a cut connection must reach the reader as an error, not a silent end.
    pipeline(source, decoder, () => undefined) as unknown as AsyncIterable<Uint8Array>;
  switch (codec) {
    case 'identity':
      return source;
    case 'gzip':
      return through(createGunzip());
    case 'br':
      return through(createBrotliDecompress());
    case 'zstd':
      return through(new DecompressStream());
    default:
      throw new FlotillaError('FLT_PACK_INVALID', `pack codec "${codec}" is not supported`);
  }
}
