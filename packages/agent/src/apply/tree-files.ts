/**
 * A release's files read out of the chunk cache, by path (`TreeFiles`), for a runtime that begins
 * its work before the tree is staged (`Runtime.prepare`; docker: `docker load` of the release's
 * images while the stage step writes the same layers to disk). Every object is checked against its
 * id; `read` checks every chunk against its hash, as staging does. The pieces of `open` are not
 * hashed chunk by chunk (their reader hashes the whole file against a signed digest: a docker
 * layer against its diff id), which halves the hashing of a large layer read beside the staging.
 */
import { FlotillaError } from '@flotilla/protocol';
import { contentId } from '@flotilla/store';
import type { FileObject } from '@flotilla/store';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { TreeFile, TreeFiles } from '../runtimes/runtime.js';

/** Pieces handed on are gathered up to this size (fewer hops through the load's streams). */
const PIECE_BYTES = 1024 * 1024;

export function cacheTreeFiles(cache: ChunkCache, root: string): TreeFiles {
  const fileAt = async (path: string): Promise<FileObject | null> => {
    let id = root;
    const names = path.split('/');
    for (const [i, name] of names.entries()) {
      const dir = await cache.getTreeObject(id);
      if (dir.type !== 'dir') return null;
      const entry = dir.entries.find((e) => e.name === name);
      const last = i === names.length - 1;
      if (entry?.hash === undefined || entry.kind !== (last ? 'file' : 'dir')) return null;
      id = entry.hash;
    }
    const file = await cache.getTreeObject(id);
    return file.type === 'file' ? file : null;
  };
  const open = async (path: string): Promise<TreeFile | null> => {
    const file = await fileAt(path).catch(() => null);
    if (file === null) return null;
    return { size: file.size, pieces: () => chunksOf(cache, file, false), close: () => Promise.resolve() };
  };
  return {
    open,
    read: async (path) => {
      const file = await fileAt(path).catch(() => null);
      if (file === null) return null;
      const parts: Uint8Array[] = [];
      for await (const piece of chunksOf(cache, file, true)) parts.push(piece);
      return Buffer.concat(parts);
    },
  };
}

async function* chunksOf(cache: ChunkCache, file: FileObject, verify: boolean): AsyncGenerator<Uint8Array> {
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  let offset = 0;
  for (const chunk of file.chunks) {
    const bytes = await cache.getChunk(chunk.id);
    if (
      bytes.length !== chunk.size ||
      offset + bytes.length > file.size ||
      (verify && contentId(bytes) !== chunk.id)
    )
      throw new FlotillaError('FLT_HASH_MISMATCH', `chunk ${chunk.id} does not match its hash or size`, {
        details: { chunk: chunk.id, size: chunk.size, got: bytes.length },
      });
    offset += bytes.length;
    held.push(bytes);
    heldBytes += bytes.length;
    if (heldBytes >= PIECE_BYTES) {
      yield held.length === 1 ? held[0]! : Buffer.concat(held);
      held = [];
      heldBytes = 0;
    }
  }
  if (offset !== file.size)
    throw new FlotillaError('FLT_HASH_MISMATCH', `the chunks add up to ${offset} bytes, not ${file.size}`);
  if (held.length > 0) yield held.length === 1 ? held[0]! : Buffer.concat(held);
}
