import { resolveLimits } from '../objects/limits.js';
import type { TreeLimits } from '../objects/limits.js';
import { checkSymlinkWithinTree } from '../objects/paths.js';
import type { DirEntry, DirObject, EntryKind } from '../objects/types.js';
import { compareNames } from '../objects/validate.js';
import type { ObjectReader } from '../store-api.js';
import { TreeBudget, childPath, loadDir, loadFile } from './context.js';

/** An entry that exists on one side only. `size` is set for files (bytes). */
export interface EntryChange {
  path: string;
  kind: EntryKind;
  size?: number;
}

/** An entry present on both sides with the same kind but different content, mode or target. */
export interface EntryModification {
  path: string;
  kind: EntryKind;
  oldSize?: number;
  newSize?: number;
}

export interface TreeDiff {
  added: EntryChange[];
  removed: EntryChange[];
  modified: EntryModification[];
  /** File and directory object ids of the new tree that the old tree's changed part lacks (what to fetch). */
  objects: string[];
  /** Chunk ids of the new tree's new or changed files that the old versions of those files lack. */
  chunks: string[];
}

export interface DiffOptions {
  limits?: Partial<TreeLimits>;
  /**
   * Ids the caller already holds (e.g. `store.has`); they are left out of `objects` and `chunks`.
   * Without it, a chunk that only an unchanged old file holds may still be listed.
   */
  have?: (id: string) => boolean | Promise<boolean>;
}

class Differ {
  readonly diff: TreeDiff = { added: [], removed: [], modified: [], objects: [], chunks: [] };
  private readonly wanted = new Set<string>();
  private readonly oldIds = new Set<string>();
  private readonly budget: TreeBudget;

  constructor(
    private readonly reader: ObjectReader,
    private readonly limits: TreeLimits,
  ) {
    this.budget = new TreeBudget(limits);
  }

  async dirs(oldId: string | null, newId: string, path: string, depth: number): Promise<void> {
    if (oldId === newId) return;
    this.budget.checkDepth(depth, path);
    const newDir = await loadDir(this.reader, newId, path, this.limits);
    this.want(newId);
    const oldDir: DirObject =
      oldId === null ? { type: 'dir', entries: [] } : await loadDir(this.reader, oldId, path, this.limits);
    if (oldId !== null) this.oldIds.add(oldId);
    let i = 0;
    let j = 0;
    while (i < oldDir.entries.length || j < newDir.entries.length) {
      const before = oldDir.entries[i];
      const after = newDir.entries[j];
      const order =
        before === undefined ? 1 : after === undefined ? -1 : compareNames(before.name, after.name);
      if (order < 0) {
        await this.removed(before!, childPath(path, before!.name), depth);
        i++;
      } else if (order > 0) {
        await this.added(after!, childPath(path, after!.name), depth);
        j++;
      } else {
        await this.changed(before!, after!, childPath(path, after!.name), depth);
        i++;
        j++;
      }
    }
  }

  private async changed(before: DirEntry, after: DirEntry, path: string, depth: number): Promise<void> {
    this.budget.addEntry(path);
    if (before.kind !== after.kind) {
      await this.removed(before, path, depth);
      await this.added(after, path, depth);
      return;
    }
    if (after.kind === 'symlink') {
      checkSymlinkWithinTree(after.target!, depth, path);
      if (before.target !== after.target) this.diff.modified.push({ path, kind: 'symlink' });
    } else if (after.kind === 'dir') {
      if (before.mode !== after.mode) this.diff.modified.push({ path, kind: 'dir' });
      await this.dirs(before.hash!, after.hash!, path, depth + 1);
    } else if (before.hash !== after.hash) {
      const oldFile = await loadFile(this.reader, before.hash!, path, this.limits);
      const newFile = await loadFile(this.reader, after.hash!, path, this.limits);
      this.oldIds.add(before.hash!);
      for (const chunk of oldFile.chunks) this.oldIds.add(chunk.id);
      this.want(after.hash!);
      for (const chunk of newFile.chunks) this.want(chunk.id, true);
      this.diff.modified.push({ path, kind: 'file', oldSize: oldFile.size, newSize: newFile.size });
    }
  }

  private async added(entry: DirEntry, path: string, depth: number): Promise<void> {
    this.budget.addEntry(path);
    if (entry.kind === 'symlink') {
      checkSymlinkWithinTree(entry.target!, depth, path);
      this.diff.added.push({ path, kind: 'symlink' });
    } else if (entry.kind === 'file') {
      const file = await loadFile(this.reader, entry.hash!, path, this.limits);
      this.want(entry.hash!);
      for (const chunk of file.chunks) this.want(chunk.id, true);
      this.diff.added.push({ path, kind: 'file', size: file.size });
    } else {
      this.diff.added.push({ path, kind: 'dir' });
      await this.dirs(null, entry.hash!, path, depth + 1);
    }
  }

  private async removed(entry: DirEntry, path: string, depth: number): Promise<void> {
    if (entry.kind === 'symlink') {
      this.diff.removed.push({ path, kind: 'symlink' });
    } else if (entry.kind === 'file') {
      const file = await loadFile(this.reader, entry.hash!, path, this.limits);
      this.oldIds.add(entry.hash!);
      for (const chunk of file.chunks) this.oldIds.add(chunk.id);
      this.diff.removed.push({ path, kind: 'file', size: file.size });
    } else {
      this.diff.removed.push({ path, kind: 'dir' });
      this.budget.checkDepth(depth + 1, path);
      this.oldIds.add(entry.hash!);
      const dir = await loadDir(this.reader, entry.hash!, path, this.limits);
      for (const child of dir.entries) {
        const childAt = childPath(path, child.name);
        this.budget.addEntry(childAt);
        await this.removed(child, childAt, depth + 1);
      }
    }
  }

  private want(id: string, isChunk = false): void {
    if (this.wanted.has(id)) return;
    this.wanted.add(id);
    (isChunk ? this.diff.chunks : this.diff.objects).push(id);
  }

  async finish(have: DiffOptions['have']): Promise<TreeDiff> {
    const keep = async (id: string): Promise<boolean> =>
      !this.oldIds.has(id) && !(have !== undefined && (await have(id)));
    const objects: string[] = [];
    for (const id of this.diff.objects) if (await keep(id)) objects.push(id);
    const chunks: string[] = [];
    for (const id of this.diff.chunks) if (await keep(id)) chunks.push(id);
    return { ...this.diff, objects, chunks };
  }
}

/**
 * Compares two trees (`oldRoot` null: everything is new). Subtrees with equal hashes are skipped
 * without being read, so the work and the objects read grow with the change, not the tree. Reports
 * entries added, removed and modified (files with sizes; a directory whose only change is its
 * mode counts as modified), and the object and chunk ids an update must fetch.
 */
export async function diffTrees(
  reader: ObjectReader,
  oldRoot: string | null,
  newRoot: string,
  options: DiffOptions = {},
): Promise<TreeDiff> {
  const differ = new Differ(reader, resolveLimits(options.limits));
  await differ.dirs(oldRoot, newRoot, '', 0);
  return differ.finish(options.have);
}
