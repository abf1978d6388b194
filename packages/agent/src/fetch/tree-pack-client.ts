/**
 * The tree-pack endpoint (`ObjectRoutes.treePack`): a release's directory and file objects in one
 * request, less the subtrees the device already holds, before the level walk that would otherwise
 * ask level by level.
 */
import { FlotillaError, MAX_TREE_PACK_HAVE, ObjectRoutes } from '@flotilla/protocol';
import type { PackCodec } from '@flotilla/protocol';
import { parseObject } from '@flotilla/store';
import type { FetchRequestOptions, FetchSink, TreeFetchOptions } from './fetcher.js';
import { decodedBody } from './pack-client.js';
import { readPack } from './pack-reader.js';
import type { Transport } from './transport.js';

export class TreePackClient {
  /** The server has no tree-pack route (an older one): the level walk, and no more asking. */
  private unsupported = false;

  constructor(
    private readonly transport: Transport,
    private readonly codec: PackCodec,
    private readonly maxObjectBytes: number,
  ) {}

  /** False when the tree must be walked instead (no such route, or the request failed: `onFallback`). */
  async fetchTree(
    root: string,
    have: readonly string[],
    sink: FetchSink,
    options: TreeFetchOptions = {},
  ): Promise<boolean> {
    if (this.unsupported) return false;
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
      return await this.request(root, haveRoots, store, options);
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
  private async request(
    root: string,
    have: string[],
    store: (id: string, bytes: Uint8Array) => Promise<void>,
    options: FetchRequestOptions,
  ): Promise<boolean> {
    const exchange = await this.transport.postJson(
      ObjectRoutes.treePack,
      { root, have, codec: this.codec },
      options.signal,
    );
    const { response, idle } = exchange;
    try {
      if (await this.transport.routeMissing(response, `the server lacks tree ${root}`)) {
        this.unsupported = true;
        return false;
      }
      await this.transport.expectOk(response, ObjectRoutes.treePack);
      const records = decodedBody(this.transport, exchange, options);
      // Only what the tree names is taken: the root, then the children of each directory received
      // (the server sends a directory before what it names).
      const expected = new Set([root]);
      await readPack(records, expected, this.maxObjectBytes, async (id, bytes) => {
        for (const child of childIds(id, bytes)) expected.add(child);
        await store(id, bytes);
      });
      return true;
    } finally {
      idle.stop();
    }
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
