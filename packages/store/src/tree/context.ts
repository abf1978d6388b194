import { FlotillaError } from '@flotilla/protocol';
import { asIoError } from '../io-error.js';
import { parseDirObject, parseFileObject } from '../objects/encoding.js';
import { assertContentId } from '../objects/ids.js';
import { DEFAULT_TREE_LIMITS } from '../objects/limits.js';
import type { TreeLimits } from '../objects/limits.js';
import type { DirObject, FileObject, TreeObject } from '../objects/types.js';
import type { ObjectReader, ParsedObjectReader } from '../store-api.js';

/** Joins a tree-relative path ('' is the root) with a child name. */
export function childPath(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

/**
 * Adds the tree path an error happened at: a FlotillaError keeps its code, a file system error
 * becomes FLT_IO; anything else is returned as is.
 */
export function withPath(error: unknown, path: string): unknown {
  const where = path === '' ? '/' : path;
  const io = asIoError(error, where);
  if (io !== error) return io;
  if (!(error instanceof FlotillaError)) return error;
  if (hasPath(error)) return error;
  const details =
    typeof error.details === 'object' && error.details !== null ? { ...error.details, path } : { path };
  return new FlotillaError(error.code, `${where}: ${error.message}`, { details, cause: error });
}

function hasPath(error: FlotillaError): boolean {
  return typeof error.details === 'object' && error.details !== null && 'path' in error.details;
}

/** Counts entries while a tree is traversed and enforces the tree-wide limits. */
export class TreeBudget {
  entries = 0;
  bytes = 0;

  constructor(readonly limits: TreeLimits) {}

  addEntry(path: string): void {
    this.entries++;
    if (this.entries > this.limits.maxTotalEntries) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `tree has more than ${this.limits.maxTotalEntries} entries (at ${path})`,
        {
          details: { path, maxTotalEntries: this.limits.maxTotalEntries },
        },
      );
    }
  }

  addBytes(size: number, path: string): void {
    this.bytes += size;
    if (this.bytes > this.limits.maxTotalBytes) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `tree holds more than ${this.limits.maxTotalBytes} bytes (at ${path})`,
        {
          details: { path, maxTotalBytes: this.limits.maxTotalBytes },
        },
      );
    }
  }

  checkDepth(depth: number, path: string): void {
    if (depth > this.limits.maxDepth) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `directory ${path} is nested deeper than ${this.limits.maxDepth} levels`,
        {
          details: { path, maxDepth: this.limits.maxDepth },
        },
      );
    }
  }
}

const defaultLimits = new WeakMap<TreeLimits, boolean>();

function isDefault(limits: TreeLimits): boolean {
  let known = defaultLimits.get(limits);
  if (known === undefined) {
    const keys = Object.keys(DEFAULT_TREE_LIMITS) as (keyof TreeLimits)[];
    known = keys.every((k) => limits[k] === DEFAULT_TREE_LIMITS[k]);
    defaultLimits.set(limits, known);
  }
  return known;
}

/**
 * The object as a `ParsedObjectReader` holds it (verified with the default limits), when `limits`
 * are the defaults; undefined otherwise, or if the reader cannot give it (then the bytes are
 * parsed here, and any error is reported from there).
 */
async function parsedByReader(
  reader: ObjectReader,
  id: string,
  limits: TreeLimits,
): Promise<TreeObject | undefined> {
  const parsed = reader as Partial<ParsedObjectReader>;
  if (typeof parsed.getTreeObject !== 'function' || !isDefault(limits)) return undefined;
  return parsed.getTreeObject(id).catch(() => undefined);
}

/** Fetches a directory object and verifies its hash and content before anyone uses it. */
export async function loadDir(
  reader: ObjectReader,
  id: string,
  path: string,
  limits: TreeLimits,
): Promise<DirObject> {
  try {
    assertContentId(id);
    const parsed = await parsedByReader(reader, id, limits);
    if (parsed?.type === 'dir') return parsed;
    return parseDirObject(await reader.getObject(id), { expectedId: id, limits });
  } catch (error) {
    throw withPath(error, path);
  }
}

/** Fetches a file object and verifies its hash and content before anyone uses it. */
export async function loadFile(
  reader: ObjectReader,
  id: string,
  path: string,
  limits: TreeLimits,
): Promise<FileObject> {
  try {
    assertContentId(id);
    const parsed = await parsedByReader(reader, id, limits);
    if (parsed?.type === 'file') return parsed;
    return parseFileObject(await reader.getObject(id), { expectedId: id, limits });
  } catch (error) {
    throw withPath(error, path);
  }
}
