/** The seam between the update flow and wherever objects come from (HTTP in production, fakes in unit tests). */
import type { DeltaPair, FlotillaError } from '@flotilla/protocol';
import type { DeltaRecord } from '@flotilla/store';

/** Where fetched objects go; each call verifies `id` against the bytes before anything is stored. */
export interface FetchSink {
  /** Uncompressed bytes of a chunk or object (pack records). */
  putChunk(id: string, bytes: Uint8Array): Promise<unknown>;
  /** A codec frame as the per-object URL serves it. */
  putFrame(id: string, frame: Uint8Array): Promise<unknown>;
}

export interface FetchRequestOptions {
  signal?: AbortSignal;
  /** Called with bytes as they arrive on the wire (compressed), for progress and accounting. */
  onWireBytes?: (bytes: number) => void;
}

export interface ObjectFetcher {
  /** Fetches every id into `sink`; resolves when all are stored, rejects (FlotillaError) otherwise. */
  fetch(ids: readonly string[], sink: FetchSink, options?: FetchRequestOptions): Promise<void>;
}

export interface DeltaFetcher {
  /**
   * Asks for file deltas (protocol `ObjectRoutes.deltas`) and hands on each record of the answer as it
   * arrives, one at a time (`onRecord` settles before the next is handed on: the caller reuses its
   * buffers from record to record). Resolves false, having fetched nothing, when the server offers no deltas; rejects
   * (FlotillaError) when a request fails part way (the records already handed on stay valid).
   */
  fetchDeltas(
    pairs: readonly DeltaPair[],
    onRecord: (record: DeltaRecord) => Promise<void>,
    options?: FetchRequestOptions,
  ): Promise<boolean>;
}

export function canFetchDeltas(fetcher: ObjectFetcher): fetcher is ObjectFetcher & DeltaFetcher {
  return typeof (fetcher as Partial<DeltaFetcher>).fetchDeltas === 'function';
}

export interface TreeFetchOptions extends FetchRequestOptions {
  /** Told why a tree pack was given up (cut, refused, unknown root), for the log; not for an older server. */
  onFallback?: (error: FlotillaError) => void;
}

export interface TreeFetcher {
  /**
   * Fetches in one request every tree object (directory and file objects, not chunks) reachable
   * from `root` and from none of the `have` roots (protocol `ObjectRoutes.treePack`) into `sink`.
   * `have`: roots of trees the sink holds whole; past the protocol's 16 the rest are not sent.
   * An optimisation in front of a level-by-level walk, which then finds these objects in the sink:
   * resolves true once the pack arrived whole; false when the server has no such route (an older
   * server: never asked again) or the pack failed (every record before the failure is verified and
   * stored). Rejects only when `signal` aborts or the sink fails (disk full, …).
   */
  fetchTree(
    root: string,
    have: readonly string[],
    sink: FetchSink,
    options?: TreeFetchOptions,
  ): Promise<boolean>;
}

export function canFetchTrees(fetcher: ObjectFetcher): fetcher is ObjectFetcher & TreeFetcher {
  return typeof (fetcher as Partial<TreeFetcher>).fetchTree === 'function';
}
