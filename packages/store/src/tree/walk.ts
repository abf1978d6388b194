import { resolveLimits } from '../objects/limits.js';
import type { TreeLimits } from '../objects/limits.js';
import { checkSymlinkWithinTree } from '../objects/paths.js';
import type { DirEntry } from '../objects/types.js';
import type { ObjectReader } from '../store-api.js';
import { TreeBudget, childPath, loadDir } from './context.js';

export interface WalkItem {
  /** Path relative to the root, `/`-separated, no leading slash. */
  path: string;
  entry: DirEntry;
  /** Depth of the directory holding the entry (the root is 0). */
  depth: number;
}

export interface WalkOptions {
  limits?: Partial<TreeLimits>;
}

/**
 * Lists every entry of a tree, depth first, entries in name order (a directory before its
 * children). Each directory object is fetched once per reference, verified by hash and validated;
 * symlinks are checked not to escape the tree; depth and entry-count limits apply.
 */
export async function* walkTree(
  reader: ObjectReader,
  root: string,
  options: WalkOptions = {},
): AsyncGenerator<WalkItem> {
  const limits = resolveLimits(options.limits);
  const budget = new TreeBudget(limits);
  yield* walkDir(reader, root, '', 0, budget);
}

async function* walkDir(
  reader: ObjectReader,
  id: string,
  path: string,
  depth: number,
  budget: TreeBudget,
): AsyncGenerator<WalkItem> {
  budget.checkDepth(depth, path);
  const dir = await loadDir(reader, id, path, budget.limits);
  for (const entry of dir.entries) {
    const entryPath = childPath(path, entry.name);
    budget.addEntry(entryPath);
    if (entry.kind === 'symlink') checkSymlinkWithinTree(entry.target!, depth, entryPath);
    yield { path: entryPath, entry, depth };
    if (entry.kind === 'dir') yield* walkDir(reader, entry.hash!, entryPath, depth + 1, budget);
  }
}
