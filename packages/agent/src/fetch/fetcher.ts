/** The seam between the update flow and wherever objects come from (HTTP in production, fakes in unit tests). */

/** Where fetched objects go; each call verifies `id` against the bytes before anything is stored. */
export interface FetchSink {
  /** Uncompressed bytes of a chunk or object (pack records). */
  putChunk(id: string, bytes: Uint8Array): Promise<void>;
  /** A codec frame as the per-object URL serves it. */
  putFrame(id: string, frame: Uint8Array): Promise<void>;
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
