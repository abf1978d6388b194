/** A tree's content ids as Flotilla stores them: `buildTree` with the defaults the CLI push uses. */
import { MemoryStore, buildTree } from '@flotilla/store';

export interface TreeIds {
  root: string;
  /** Ids of file and directory objects. */
  objects: Set<string>;
  /** Ids of chunks. */
  chunks: Set<string>;
  /** Bytes of the files in the tree. */
  bytes: number;
}

export async function treeIds(dir: string): Promise<TreeIds> {
  const store = new MemoryStore();
  const objects = new Set<string>();
  const chunks = new Set<string>();
  const sink = {
    has: (id: string) => store.has(id),
    putChunk: (id: string, bytes: Uint8Array) => {
      chunks.add(id);
      return store.putChunk(id, bytes);
    },
    putObject: (id: string, bytes: Uint8Array) => {
      objects.add(id);
      return store.putObject(id, bytes);
    },
  };
  const built = await buildTree(dir, { sink });
  return { root: built.root, objects, chunks, bytes: built.stats.bytes };
}
