import { constants } from 'node:fs';
import { mkdir, open, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { asIoError } from '../io-error.js';
import { contentId } from '../objects/ids.js';
import { resolveLimits } from '../objects/limits.js';
import type { TreeLimits } from '../objects/limits.js';
import { checkSymlinkWithinTree } from '../objects/paths.js';
import type { FileObject } from '../objects/types.js';
import { checkMode } from '../objects/validate.js';
import type { StoreReader } from '../store-api.js';
import { TreeBudget, childPath, loadDir, loadFile, withPath } from './context.js';

export interface MaterializeOptions {
  limits?: Partial<TreeLimits>;
  /** fsync every file before returning (default true: the agent switches releases right after). */
  fsync?: boolean;
  /** Mode of the target directory itself (default 0o755). */
  rootMode?: number;
}

export interface MaterializeStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

const CREATE_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

class Materializer {
  readonly stats: MaterializeStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  // Directory modes are applied last, deepest first, so read-only directories can still be filled.
  readonly dirModes: { absPath: string; mode: number }[] = [];
  private readonly budget: TreeBudget;

  constructor(
    private readonly reader: StoreReader,
    private readonly limits: TreeLimits,
    private readonly fsync: boolean,
  ) {
    this.budget = new TreeBudget(limits);
  }

  async dir(id: string, absPath: string, path: string, depth: number): Promise<void> {
    this.budget.checkDepth(depth, path);
    const dir = await loadDir(this.reader, id, path, this.limits);
    for (const entry of dir.entries) {
      const entryPath = childPath(path, entry.name);
      const entryAbs = join(absPath, entry.name);
      this.budget.addEntry(entryPath);
      try {
        if (entry.kind === 'symlink') {
          checkSymlinkWithinTree(entry.target!, depth, entryPath);
          await symlink(entry.target!, entryAbs);
          this.stats.symlinks++;
        } else if (entry.kind === 'file') {
          await this.file(
            await loadFile(this.reader, entry.hash!, entryPath, this.limits),
            entryAbs,
            entryPath,
          );
        } else {
          await mkdir(entryAbs, { mode: 0o700 });
          this.stats.dirs++;
          await this.dir(entry.hash!, entryAbs, entryPath, depth + 1);
          this.dirModes.push({ absPath: entryAbs, mode: entry.mode! });
        }
      } catch (error) {
        throw withPath(error, entryPath);
      }
    }
  }

  private async file(file: FileObject, absPath: string, path: string): Promise<void> {
    this.budget.addBytes(file.size, path);
    // O_EXCL | O_NOFOLLOW: never write through a symlink or into a file that is already there.
    const handle = await open(absPath, CREATE_FILE, 0o600);
    try {
      for (const chunk of file.chunks) {
        const bytes = await this.reader.getChunk(chunk.id);
        if (bytes.length !== chunk.size || contentId(bytes) !== chunk.id) {
          throw new FlotillaError('FLT_HASH_MISMATCH', `chunk ${chunk.id} does not match its hash or size`, {
            details: { chunk: chunk.id, size: chunk.size, got: bytes.length },
          });
        }
        await handle.write(bytes);
      }
      await handle.chmod(file.mode);
      if (this.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    this.stats.files++;
    this.stats.bytes += file.size;
  }
}

async function applyMode(absPath: string, mode: number): Promise<void> {
  const handle = await open(absPath, OPEN_DIR);
  try {
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

/**
 * Writes the tree `root` into `targetDir`, which must not exist yet (its parent must). Every object
 * and chunk is verified against its hash before it is written; files are created with O_EXCL and
 * O_NOFOLLOW, symlinks are checked not to escape the tree. On any failure the partly written
 * directory is removed, so the caller sees either the whole tree or nothing.
 */
export async function materialize(
  reader: StoreReader,
  root: string,
  targetDir: string,
  options: MaterializeOptions = {},
): Promise<MaterializeStats> {
  const limits = resolveLimits(options.limits);
  const rootMode = checkMode(options.rootMode ?? 0o755, limits, 'rootMode');
  const materializer = new Materializer(reader, limits, options.fsync ?? true);
  try {
    await mkdir(targetDir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FlotillaError(
        'FLT_TARGET_EXISTS',
        `${targetDir} already exists; materialize needs a fresh directory`,
        { details: { targetDir } },
      );
    }
    throw asIoError(error, targetDir);
  }
  try {
    await materializer.dir(root, targetDir, '', 0);
    for (const { absPath, mode } of materializer.dirModes) await applyMode(absPath, mode);
    await applyMode(targetDir, rootMode);
    if (options.fsync ?? true) await syncDir(targetDir);
  } catch (error) {
    await rm(targetDir, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
  return materializer.stats;
}

async function syncDir(absPath: string): Promise<void> {
  const handle = await open(absPath, OPEN_DIR);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
