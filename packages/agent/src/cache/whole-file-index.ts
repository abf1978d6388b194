/**
 * Which whole files the cache holds (whole-files.ts) and where each of their chunks lies in them,
 * so that a chunk the store lacks is read out of the whole file it belongs to. The chunk index is
 * built at the first chunk the store lacks, from the file objects, and kept up to date after.
 */
import type { FileObject, TreeObject } from '@flotilla/store';
import type { WholeFiles } from './whole-files.js';

export interface ChunkLocation {
  /** The whole file (its file object's id). */
  file: string;
  offset: number;
  size: number;
}

export class WholeFileIndex {
  /** Ids of the whole files on disk (listed at open, kept up to date). */
  private readonly ids: Set<string>;
  private chunks: Map<string, ChunkLocation> | null = null;

  constructor(
    readonly files: WholeFiles,
    /** The file object `id`, verified (the cache's, without recording a use). */
    private readonly objectOf: (id: string) => Promise<TreeObject>,
  ) {
    this.ids = new Set(files.list().map((f) => f.id));
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Records the whole file `id` (the file object `file`) written into the directory. */
  add(id: string, file: FileObject): void {
    this.ids.add(id);
    if (this.chunks !== null) this.indexFile(id, file);
  }

  /** Where the chunk `chunkId` lies in a whole file, if one holds it. */
  async locate(chunkId: string): Promise<ChunkLocation | undefined> {
    if (this.chunks === null) {
      this.chunks = new Map();
      for (const id of this.ids) {
        const object = await this.objectOf(id).catch(() => null);
        if (object?.type === 'file') this.indexFile(id, object);
      }
    }
    return this.chunks.get(chunkId);
  }

  /** Removes the whole file `id` from the disk and the index; false when there was none. */
  remove(id: string): boolean {
    this.ids.delete(id);
    if (this.chunks !== null)
      for (const [chunk, at] of this.chunks) if (at.file === id) this.chunks.delete(chunk);
    return this.files.remove(id);
  }

  private indexFile(id: string, file: FileObject): void {
    let offset = 0;
    for (const chunk of file.chunks) {
      this.chunks?.set(chunk.id, { file: id, offset, size: chunk.size });
      offset += chunk.size;
    }
  }
}
