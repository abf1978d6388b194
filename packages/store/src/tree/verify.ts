import { constants } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { contentId } from '../objects/ids.js';
import { resolveLimits } from '../objects/limits.js';
import type { TreeLimits } from '../objects/limits.js';
import type { DirEntry, FileObject } from '../objects/types.js';
import type { ObjectReader } from '../store-api.js';
import { TreeBudget, childPath, loadDir, loadFile, withPath } from './context.js';

export interface TreeProblem {
  /** Path relative to the tree root ('' is the root). */
  path: string;
  problem: 'missing' | 'unexpected' | 'kind' | 'mode' | 'size' | 'content' | 'target';
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  problems: TreeProblem[];
}

export interface VerifyOptions {
  limits?: Partial<TreeLimits>;
  /** Stop after this many problems (default 100). */
  maxProblems?: number;
  /** Also compare the root directory's own mode (default: not checked). */
  rootMode?: number;
}

class Verifier {
  readonly problems: TreeProblem[] = [];
  private readonly budget: TreeBudget;

  constructor(
    private readonly reader: ObjectReader,
    private readonly limits: TreeLimits,
    private readonly maxProblems: number,
  ) {
    this.budget = new TreeBudget(limits);
  }

  get full(): boolean {
    return this.problems.length >= this.maxProblems;
  }

  report(path: string, problem: TreeProblem['problem'], message: string): void {
    if (!this.full) this.problems.push({ path, problem, message });
  }

  async dir(id: string, absPath: string, path: string, depth: number): Promise<void> {
    this.budget.checkDepth(depth, path);
    const dir = await loadDir(this.reader, id, path, this.limits);
    const expected = new Set(dir.entries.map((entry) => entry.name));
    const names = await readdir(absPath).catch((error: unknown) => {
      throw withPath(error, path);
    });
    for (const name of names.sort()) {
      if (!expected.has(name))
        this.report(childPath(path, name), 'unexpected', 'present on disk but not in the tree');
    }
    for (const entry of dir.entries) {
      if (this.full) return;
      this.budget.addEntry(childPath(path, entry.name));
      const entryPath = childPath(path, entry.name);
      await this.entry(entry, join(absPath, entry.name), entryPath, depth).catch((error: unknown) => {
        throw withPath(error, entryPath);
      });
    }
  }

  private async entry(entry: DirEntry, absPath: string, path: string, depth: number): Promise<void> {
    const info = await lstat(absPath).catch(() => null);
    if (info === null) return this.report(path, 'missing', `${entry.kind} is missing`);
    if (entry.kind === 'symlink') {
      if (!info.isSymbolicLink()) return this.report(path, 'kind', 'expected a symlink');
      const target = await readlink(absPath);
      if (target !== entry.target)
        this.report(path, 'target', `symlink points to ${target}, expected ${entry.target}`);
      return;
    }
    if (entry.kind === 'dir') {
      if (!info.isDirectory()) return this.report(path, 'kind', 'expected a directory');
      if ((info.mode & 0o7777) !== entry.mode)
        this.report(
          path,
          'mode',
          `mode is 0${(info.mode & 0o7777).toString(8)}, expected 0${entry.mode!.toString(8)}`,
        );
      return this.dir(entry.hash!, absPath, path, depth + 1);
    }
    if (!info.isFile()) return this.report(path, 'kind', 'expected a regular file');
    const file = await loadFile(this.reader, entry.hash!, path, this.limits);
    if ((info.mode & 0o7777) !== file.mode)
      this.report(
        path,
        'mode',
        `mode is 0${(info.mode & 0o7777).toString(8)}, expected 0${file.mode.toString(8)}`,
      );
    if (info.size !== file.size)
      return this.report(path, 'size', `size is ${info.size}, expected ${file.size}`);
    if (!(await sameContent(absPath, file))) this.report(path, 'content', 'content differs from the tree');
  }
}

/** Reads the file chunk by chunk (by the sizes in its file object) and compares each chunk's hash. */
async function sameContent(absPath: string, file: FileObject): Promise<boolean> {
  const handle = await open(absPath, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for (const chunk of file.chunks) {
      const buffer = Buffer.allocUnsafe(chunk.size);
      const { bytesRead } = await handle.read(buffer, 0, chunk.size, null);
      if (bytesRead !== chunk.size || contentId(buffer) !== chunk.id) return false;
    }
    const probe = Buffer.alloc(1);
    return (await handle.read(probe, 0, 1, null)).bytesRead === 0;
  } finally {
    await handle.close();
  }
}

/**
 * Checks that `dir` on disk holds exactly the tree `root`: same names (nothing missing, nothing
 * extra), kinds, file modes, sizes and contents (hashed chunk by chunk), directory modes and
 * symlink targets. Returns the differences found, up to `maxProblems`; objects that fail
 * verification throw as everywhere else.
 */
export async function verifyTree(
  reader: ObjectReader,
  dir: string,
  root: string,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const verifier = new Verifier(reader, resolveLimits(options.limits), options.maxProblems ?? 100);
  const info = await lstat(dir).catch(() => null);
  if (info === null || !info.isDirectory()) {
    verifier.report('', info === null ? 'missing' : 'kind', `${dir} is not a directory`);
  } else {
    if (options.rootMode !== undefined && (info.mode & 0o7777) !== options.rootMode) {
      verifier.report(
        '',
        'mode',
        `root mode is 0${(info.mode & 0o7777).toString(8)}, expected 0${options.rootMode.toString(8)}`,
      );
    }
    await verifier.dir(root, dir, '', 0);
  }
  return { ok: verifier.problems.length === 0, problems: verifier.problems };
}
