/**
 * Walks a release's tree through the object store: every directory, file object and chunk it
 * references, whether each is stored, and the release's size. Objects are parsed and verified by
 * hash as they are read (walkTree, parseFileObject), so a stored tree that is not a valid tree is
 * refused before it becomes a release.
 */
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { parseFileObject, walkTree } from '@flotilla/store';
import type { ObjectStore } from '../objects/store.js';

export interface TreeScan {
  /** Every object id the tree references (root, directories, files, chunks). */
  ids: Set<string>;
  files: number;
  /** Uncompressed bytes of all files. */
  bytes: number;
  /** Stored bytes of all referenced objects. */
  storedBytes: number;
  /** Bytes of the root directory object (the TUF target's length). */
  rootLength: number;
}

function isMissing(error: unknown): error is FlotillaError {
  return isFlotillaError(error) && error.code === 'FLT_OBJECT_MISSING';
}

/** Throws FLT_RELEASE_OBJECTS_MISSING listing what is absent (as far as the walk could see). */
export async function scanTree(store: ObjectStore, root: string): Promise<TreeScan> {
  const missing = new Set<string>();
  const scan: TreeScan = { ids: new Set([root]), files: 0, bytes: 0, storedBytes: 0, rootLength: 0 };
  try {
    scan.rootLength = (await store.getObject(root)).length;
  } catch (error) {
    if (isMissing(error)) throw missingError([root]);
    throw error;
  }
  try {
    for await (const { entry } of walkTree(store, root)) {
      if (entry.kind === 'symlink' || !entry.hash) continue;
      scan.ids.add(entry.hash);
      if (entry.kind !== 'file') continue;
      scan.files += 1;
      let bytes: Uint8Array;
      try {
        bytes = await store.getObject(entry.hash);
      } catch (error) {
        if (!isMissing(error)) throw error;
        missing.add(entry.hash);
        continue;
      }
      const file = parseFileObject(bytes, { expectedId: entry.hash });
      scan.bytes += file.size;
      for (const chunk of file.chunks) scan.ids.add(chunk.id);
    }
  } catch (error) {
    const id = isMissing(error) ? (error.details as { id?: string } | undefined)?.id : undefined;
    if (id === undefined) throw error;
    missing.add(id);
  }
  for (const id of scan.ids) {
    const size = await store.size(id);
    if (size === undefined) missing.add(id);
    else scan.storedBytes += size;
  }
  if (missing.size > 0) throw missingError([...missing]);
  return scan;
}

function missingError(missing: string[]): FlotillaError {
  return new FlotillaError(
    'FLT_RELEASE_OBJECTS_MISSING',
    `${missing.length} objects of the release are not stored; upload them first`,
    { details: { missing } },
  );
}
