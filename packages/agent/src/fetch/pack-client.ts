/**
 * The pack endpoint (`ObjectRoutes.pack`): a batch of objects in one stream, compressed as a whole;
 * every record verified by hash before it is stored. Also the stream codecs the tree-pack endpoint
 * shares.
 */
import { pipeline, Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip } from 'node:zlib';
import { FlotillaError, ObjectRoutes, PACK_CODEC_HEADER } from '@flotilla/protocol';
import type { PackCodec } from '@flotilla/protocol';
import { DecompressStream } from 'zstd-napi';
import type { FetchRequestOptions, FetchSink } from './fetcher.js';
import { readPack } from './pack-reader.js';
import type { Exchange, Transport } from './transport.js';

/** What is asked of a server that refuses `frames` (one from before that codec). */
const FRAMES_FALLBACK: PackCodec = 'zstd';

export class PackClient {
  /** The server has no pack route (an older one): per-object GETs only, and no more asking. */
  unsupported = false;
  /** The server refused the `frames` codec (an older one): FRAMES_FALLBACK from then on. */
  private framesRefused = false;

  constructor(
    private readonly transport: Transport,
    private readonly codec: PackCodec,
    private readonly maxObjectBytes: number,
  ) {}

  /** Fetches `ids` in one pack; `done` is told each id stored. What a cut pack leaves is for the caller. */
  async fetch(
    ids: string[],
    sink: FetchSink,
    options: FetchRequestOptions,
    done: (id: string) => void,
  ): Promise<void> {
    const codec = this.codec === 'frames' && this.framesRefused ? FRAMES_FALLBACK : this.codec;
    const exchange = await this.transport.postJson(ObjectRoutes.pack, { ids, codec }, options.signal);
    const { response, idle } = exchange;
    try {
      if (await this.transport.routeMissing(response, 'the server lacks objects of this release')) {
        this.unsupported = true;
        throw new FlotillaError('FLT_NETWORK', `pack endpoint unavailable (HTTP ${response.status})`);
      }
      // A server from before `frames` refuses the request (its codec is not in its schema).
      if (codec === 'frames' && response.status === 400) {
        await response.body?.cancel().catch(() => undefined);
        idle.stop();
        this.framesRefused = true;
        return await this.fetch(ids, sink, options, done);
      }
      await this.transport.expectOk(response, ObjectRoutes.pack);
      const records = decodedBody(this.transport, exchange, options);
      // Frames are stored as they came (the store decodes and hashes each first).
      const frames = response.headers.get(PACK_CODEC_HEADER) === 'frames';
      await readPack(
        records,
        new Set(ids),
        this.maxObjectBytes,
        async (id, bytes) => {
          await (frames ? sink.putFrame(id, bytes) : sink.putChunk(id, bytes));
          done(id);
        },
        { frames },
      );
    } finally {
      idle.stop();
    }
  }
}

/** A pack response's body, decompressed as its codec header says. */
export function decodedBody(
  transport: Transport,
  exchange: Exchange,
  options: FetchRequestOptions,
): AsyncIterable<Uint8Array> {
  const codec = exchange.response.headers.get(PACK_CODEC_HEADER) ?? 'identity';
  return decompress(transport.body(exchange, options), codec);
}

function decompress(wire: AsyncIterable<Uint8Array>, codec: string): AsyncIterable<Uint8Array> {
  const source = Readable.from(wire);
  const through = (decoder: NodeJS.ReadWriteStream) =>
    // pipeline, not pipe: a cut connection must reach the reader as an error, not a silent end.
    pipeline(source, decoder, () => undefined) as unknown as AsyncIterable<Uint8Array>;
  switch (codec) {
    case 'identity':
    case 'frames': // each record is compressed on its own
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
