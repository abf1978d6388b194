import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { resolveChunkerParams } from '../chunker/params.js';
import type { ChunkerOptions, ChunkerParams } from '../chunker/params.js';
import { chunkStream, readFileHandle } from '../chunker/stream.js';
import { asIoError } from '../io-error.js';
import { encodeObject } from '../objects/encoding.js';
import { contentId } from '../objects/ids.js';
import { resolveLimits } from '../objects/limits.js';
import type { TreeLimits } from '../objects/limits.js';
import { checkEntryName, checkSymlinkWithinTree } from '../objects/paths.js';
import type { ChunkRef, DirEntry, TreeObject } from '../objects/types.js';
import { checkMode, compareNames } from '../objects/validate.js';
import type { ObjectSink } from '../store-api.js';
import { TreeBudget, childPath, withPath } from './context.js';

export interface BuildOptions {
  sink: ObjectSink;
  chunker?: ChunkerOptions | ChunkerParams;
  limits?: Partial<TreeLimits>;
  /**
   * A file object id the caller knows to be that of the file at `path` (relative, `a/b`) with
   * `mode`, from an earlier build of the same bytes with the same chunker: used without reading
   * the file when the sink has that object (its chunks went in before it). The file on disk may
   * then be a placeholder; its chunks are not counted in the stats.
   */
  knownFile?: (path: string, mode: number) => string | undefined;
  /** Called with each regular file's path, mode and file object id. */
  onFile?: (path: string, mode: number, id: string) => void;
}

export interface BuildStats {
  files: number;
  /** Directories below the root. */
  dirs: number;
  symlinks: number;
  /** Sum of file sizes, bytes. */
  bytes: number;
  /** Chunk references over all files. */
  chunks: number;
  /** Distinct chunk ids in the tree. */
  uniqueChunks: number;
  /** Chunks the sink did not have and received. */
  newChunks: number;
  /** File and directory objects the sink did not have and received. */
  newObjects: number;
  /** Files taken by id from BuildOptions.knownFile, not read (their bytes are not in `bytes`). */
  reusedFiles: number;
}

export interface BuildResult {
  /** Id of the root directory object: the name of the release. */
  root: string;
  stats: BuildStats;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class TreeBuilder {
  readonly stats: BuildStats = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    bytes: 0,
    chunks: 0,
    uniqueChunks: 0,
    newChunks: 0,
    newObjects: 0,
    reusedFiles: 0,
  };
  private readonly seen = new Set<string>();
  private readonly budget: TreeBudget;

  constructor(
    private readonly sink: ObjectSink,
    private readonly chunker: ChunkerParams,
    private readonly limits: TreeLimits,
    private readonly hooks: Pick<BuildOptions, 'knownFile' | 'onFile'> = {},
  ) {
    this.budget = new TreeBudget(limits);
  }

  async dir(absPath: string, path: string, depth: number): Promise<string> {
    this.budget.checkDepth(depth, path);
    const names = (await readdir(absPath, { encoding: 'buffer' })).map((raw) => decodeName(raw, path));
    if (names.length > this.limits.maxEntriesPerDir) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `directory has ${names.length} entries, more than ${this.limits.maxEntriesPerDir}`,
      );
    }
    names.sort(compareNames);
    const entries: DirEntry[] = [];
    for (const name of names) {
      const entryPath = childPath(path, name);
      try {
        checkEntryName(name);
        this.budget.addEntry(entryPath);
        entries.push(await this.entry(join(absPath, name), entryPath, name, depth));
      } catch (error) {
        throw withPath(error, entryPath);
      }
    }
    return this.putObject({ type: 'dir', entries });
  }

  private async entry(absPath: string, path: string, name: string, depth: number): Promise<DirEntry> {
    const info = await lstat(absPath);
    if (info.isSymbolicLink()) {
      const target = utf8Target(await readlink(absPath, { encoding: 'buffer' }));
      checkSymlinkWithinTree(target, depth, path);
      this.stats.symlinks++;
      return { name, kind: 'symlink', target };
    }
    if (info.isDirectory()) {
      const mode = checkMode(info.mode & 0o7777, this.limits);
      const hash = await this.dir(absPath, path, depth + 1);
      this.stats.dirs++;
      return { name, kind: 'dir', hash, mode };
    }
    if (info.isFile()) return { name, kind: 'file', hash: await this.file(absPath, path) };
    throw new FlotillaError(
      'FLT_FILE_TYPE_UNSUPPORTED',
      `${describeType(info)} is not supported in a release`,
      { details: { path } },
    );
  }

  private async file(absPath: string, path: string): Promise<string> {
    // O_NOFOLLOW: if the file was swapped for a symlink since lstat, refuse instead of reading through it.
    const handle = await open(absPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const info = await handle.stat();
      if (!info.isFile())
        throw new FlotillaError('FLT_FILE_TYPE_UNSUPPORTED', 'file changed type while being read', {
          details: { path },
        });
      const mode = checkMode(info.mode & 0o7777, this.limits);
      const known = this.hooks.knownFile?.(path, mode);
      if (known !== undefined && (this.seen.has(known) || (await this.sink.has(known)))) {
        this.seen.add(known);
        this.stats.files++;
        this.stats.reusedFiles++;
        this.hooks.onFile?.(path, mode, known);
        return known;
      }
      const chunks: ChunkRef[] = [];
      let size = 0;
      for await (const chunk of chunkStream(readFileHandle(handle), this.chunker)) {
        size += chunk.length;
        if (size > this.limits.maxFileSize) {
          throw new FlotillaError(
            'FLT_LIMIT_EXCEEDED',
            `file is larger than ${this.limits.maxFileSize} bytes`,
            { details: { path } },
          );
        }
        this.budget.addBytes(chunk.length, path);
        const id = contentId(chunk);
        chunks.push({ id, size: chunk.length });
        await this.putChunk(id, chunk);
      }
      this.stats.files++;
      this.stats.bytes += size;
      this.stats.chunks += chunks.length;
      const id = await this.putObject({ type: 'file', mode, size, chunks });
      this.hooks.onFile?.(path, mode, id);
      return id;
    } finally {
      await handle.close();
    }
  }

  private async putChunk(id: string, chunk: Uint8Array): Promise<void> {
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.stats.uniqueChunks++;
    if (await this.sink.has(id)) return;
    await this.sink.putChunk(id, chunk);
    this.stats.newChunks++;
  }

  private async putObject(object: TreeObject): Promise<string> {
    const { id, bytes } = encodeObject(object, this.limits);
    if (this.seen.has(id)) return id;
    this.seen.add(id);
    if (!(await this.sink.has(id))) {
      await this.sink.putObject(id, bytes);
      this.stats.newObjects++;
    }
    return id;
  }
}

function decodeName(raw: Buffer, dirPath: string): string {
  try {
    return utf8.decode(raw);
  } catch {
    throw new FlotillaError(
      'FLT_PATH_UNSAFE',
      `a name in ${dirPath === '' ? '/' : dirPath} is not valid UTF-8`,
      {
        details: { path: dirPath, nameHex: raw.toString('hex') },
      },
    );
  }
}

function utf8Target(raw: Buffer): string {
  try {
    return utf8.decode(raw);
  } catch {
    throw new FlotillaError('FLT_PATH_UNSAFE', 'symlink target is not valid UTF-8', {
      details: { targetHex: raw.toString('hex') },
    });
  }
}

function describeType(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isCharacterDevice()) return 'a character device';
  return 'this file type';
}

/**
 * Builds the Merkle tree of a directory: every file is chunked (FastCDC) and becomes a file object,
 * every directory a directory object, all sent to `sink` (chunks and objects it already has are
 * skipped). Symlinks are recorded, never followed (the root path itself may be one); special files
 * are refused; hard links become independent files whose chunks dedupe. Returns the root id.
 */
export async function buildTree(dir: string, options: BuildOptions): Promise<BuildResult> {
  const limits = resolveLimits(options.limits);
  const info = await stat(dir).catch((error: unknown) => {
    throw asIoError(error, dir);
  });
  if (!info.isDirectory())
    throw new FlotillaError('FLT_VALIDATION', `${dir} is not a directory`, { details: { dir } });
  const builder = new TreeBuilder(options.sink, resolveChunkerParams(options.chunker), limits, options);
  const root = await builder.dir(dir, '', 0).catch((error: unknown) => {
    throw withPath(error, '');
  });
  return { root, stats: builder.stats };
}
