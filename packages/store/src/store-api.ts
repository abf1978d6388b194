/**
 * The seams between the tree code and wherever chunks and objects live (a directory on disk, the
 * server's database or object storage, an HTTP fetcher on the agent). Ids are SHA-256 hex of the
 * uncompressed bytes; chunks and objects share one id space, as git blobs and trees do. Readers are
 * not trusted: the tree code verifies every id it is given bytes for.
 */
import type { TreeObject } from './objects/types.js';

/** Gives the canonical bytes of a file or directory object. */
export interface ObjectReader {
  getObject(id: string): Promise<Uint8Array>;
}

/** Gives the uncompressed bytes of a chunk. */
export interface ChunkReader {
  getChunk(id: string): Promise<Uint8Array>;
}

export type StoreReader = ObjectReader & ChunkReader;

/**
 * A reader that can also give an object already parsed and verified against its id with the
 * default tree limits (the agent's chunk cache keeps them in memory): tree code reading with the
 * default limits takes these instead of hashing and parsing the bytes again.
 */
export interface ParsedObjectReader {
  getTreeObject(id: string): Promise<TreeObject>;
}

/**
 * Receives what a tree build produces. `has` lets the builder skip compressing what is already
 * there. The put methods resolve once the item is stored (a store may tell what it wrote; callers
 * here ignore it).
 */
export interface ObjectSink {
  has(id: string): Promise<boolean>;
  putChunk(id: string, bytes: Uint8Array): Promise<unknown>;
  putObject(id: string, bytes: Uint8Array): Promise<unknown>;
}
