import { FlotillaError } from '@flotilla/protocol';
import { isContentId } from './ids.js';
import type { TreeLimits } from './limits.js';
import { checkEntryName, checkSymlinkTarget } from './paths.js';
import type { ChunkRef, DirEntry, DirObject, FileObject, TreeObject } from './types.js';

function invalid(message: string, details?: unknown): FlotillaError {
  return new FlotillaError('FLT_MANIFEST_INVALID', message, details === undefined ? {} : { details });
}

function tooLarge(message: string, details: unknown): FlotillaError {
  return new FlotillaError('FLT_LIMIT_EXCEEDED', message, { details });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], what: string): void {
  const extra = Object.keys(value).filter((key) => value[key] !== undefined && !allowed.includes(key));
  if (extra.length > 0) throw invalid(`${what} has unknown fields: ${extra.join(', ')}`, { fields: extra });
}

function checkCount(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${what} must be a non-negative integer`, { [what]: value });
  }
  return value;
}

/** Permission bits only; setuid/setgid/sticky (0o7000) only when the limits allow them. */
export function checkMode(value: unknown, limits: TreeLimits, what = 'mode'): number {
  const mode = checkCount(value, what);
  if (mode > 0o7777) throw invalid(`${what} ${mode.toString(8)} has bits beyond 07777`, { mode });
  if ((mode & 0o7000) !== 0 && !limits.allowSpecialModes) {
    throw new FlotillaError(
      'FLT_MODE_UNSAFE',
      `${what} 0${mode.toString(8)} has setuid, setgid or sticky bits, which are not allowed`,
      {
        details: { mode },
      },
    );
  }
  return mode;
}

function checkChunkRef(value: unknown, index: number, limits: TreeLimits): ChunkRef {
  if (!isRecord(value)) throw invalid(`chunk ${index} is not an object`);
  checkKeys(value, ['id', 'size'], `chunk ${index}`);
  if (!isContentId(value.id))
    throw invalid(`chunk ${index} id is not a SHA-256 hex digest`, { id: value.id });
  const size = checkCount(value.size, 'chunk size');
  if (size === 0) throw invalid(`chunk ${index} is empty`);
  if (size > limits.maxChunkSize)
    throw tooLarge(`chunk ${index} is ${size} bytes, more than ${limits.maxChunkSize}`, { size });
  return { id: value.id, size };
}

function checkFile(value: Record<string, unknown>, limits: TreeLimits): FileObject {
  checkKeys(value, ['type', 'mode', 'size', 'chunks'], 'file object');
  const mode = checkMode(value.mode, limits);
  const size = checkCount(value.size, 'size');
  if (size > limits.maxFileSize)
    throw tooLarge(`file is ${size} bytes, more than ${limits.maxFileSize}`, { size });
  if (!Array.isArray(value.chunks)) throw invalid('file object chunks must be an array');
  const list: unknown[] = value.chunks;
  if (list.length > limits.maxChunksPerFile) {
    throw tooLarge(`file has ${list.length} chunks, more than ${limits.maxChunksPerFile}`, {
      chunks: list.length,
    });
  }
  const chunks = list.map((chunk, index) => checkChunkRef(chunk, index, limits));
  const total = chunks.reduce((sum, chunk) => sum + chunk.size, 0);
  if (total !== size)
    throw invalid(`file size ${size} differs from the sum of its chunks (${total})`, { size, total });
  return { type: 'file', mode, size, chunks };
}

function checkEntry(value: unknown, index: number, limits: TreeLimits): DirEntry {
  if (!isRecord(value)) throw invalid(`entry ${index} is not an object`);
  if (typeof value.name !== 'string') throw invalid(`entry ${index} name must be a string`);
  const name = value.name;
  checkEntryName(name);
  switch (value.kind) {
    case 'file':
      checkKeys(value, ['name', 'kind', 'hash'], `file entry "${name}"`);
      if (!isContentId(value.hash)) throw invalid(`file entry "${name}" needs a SHA-256 hash`, { name });
      return { name, kind: 'file', hash: value.hash };
    case 'dir':
      checkKeys(value, ['name', 'kind', 'hash', 'mode'], `dir entry "${name}"`);
      if (!isContentId(value.hash)) throw invalid(`dir entry "${name}" needs a SHA-256 hash`, { name });
      return {
        name,
        kind: 'dir',
        hash: value.hash,
        mode: checkMode(value.mode, limits, `mode of "${name}"`),
      };
    case 'symlink':
      checkKeys(value, ['name', 'kind', 'target'], `symlink entry "${name}"`);
      if (typeof value.target !== 'string')
        throw invalid(`symlink entry "${name}" needs a target string`, { name });
      checkSymlinkTarget(value.target);
      return { name, kind: 'symlink', target: value.target };
    default:
      throw invalid(`entry "${name}" has unknown kind ${JSON.stringify(value.kind)}`, {
        name,
        kind: value.kind,
      });
  }
}

/** Entries must be strictly ascending by the UTF-8 bytes of their names (which also forbids duplicates). */
function checkOrder(entries: DirEntry[]): void {
  for (let i = 1; i < entries.length; i++) {
    const previous = entries[i - 1]!.name;
    const current = entries[i]!.name;
    const order = compareNames(previous, current);
    if (order === 0) throw invalid(`duplicate entry name "${current}"`, { name: current });
    if (order > 0)
      throw invalid(`entries are not sorted: "${previous}" before "${current}"`, { previous, current });
  }
}

function checkDir(value: Record<string, unknown>, limits: TreeLimits): DirObject {
  checkKeys(value, ['type', 'entries'], 'dir object');
  if (!Array.isArray(value.entries)) throw invalid('dir object entries must be an array');
  const list: unknown[] = value.entries;
  if (list.length > limits.maxEntriesPerDir) {
    throw tooLarge(`directory has ${list.length} entries, more than ${limits.maxEntriesPerDir}`, {
      entries: list.length,
    });
  }
  const entries = list.map((entry, index) => checkEntry(entry, index, limits));
  checkOrder(entries);
  return { type: 'dir', entries };
}

/**
 * Validates an untrusted value as a tree object and returns a fresh, typed copy (no extra fields,
 * no shared references). Throws FLT_MANIFEST_INVALID, FLT_PATH_UNSAFE, FLT_MODE_UNSAFE or
 * FLT_LIMIT_EXCEEDED.
 */
export function validateObject(value: unknown, limits: TreeLimits): TreeObject {
  if (!isRecord(value)) throw invalid('object must be a JSON object');
  if (value.type === 'file') return checkFile(value, limits);
  if (value.type === 'dir') return checkDir(value, limits);
  throw invalid(`unknown object type ${JSON.stringify(value.type)}`, { type: value.type });
}

/** Compares two names by their UTF-8 bytes, the order of directory entries. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
