/** A chunk of a file: the SHA-256 (hex) of its uncompressed bytes and its length in bytes. */
export interface ChunkRef {
  id: string;
  size: number;
}

/** A regular file: permission bits, total size in bytes, and its chunks in order. */
export interface FileObject {
  type: 'file';
  mode: number;
  size: number;
  chunks: ChunkRef[];
}

export type EntryKind = 'file' | 'dir' | 'symlink';

/**
 * One name in a directory. `file` and `dir` entries carry the `hash` of their object; `dir`
 * entries carry the directory's `mode` (a file's mode lives in its file object); `symlink`
 * entries carry their relative `target` and nothing else.
 */
export interface DirEntry {
  name: string;
  kind: EntryKind;
  hash?: string;
  target?: string;
  mode?: number;
}

/** A directory: entries sorted by the UTF-8 bytes of their names, no duplicates. */
export interface DirObject {
  type: 'dir';
  entries: DirEntry[];
}

export type TreeObject = FileObject | DirObject;
