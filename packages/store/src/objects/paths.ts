import { FlotillaError } from '@flotilla/protocol';
import { MAX_NAME_BYTES, MAX_SYMLINK_TARGET_BYTES } from './limits.js';

// In a `u` regex a surrogate only matches when it is unpaired: such strings have no UTF-8 form.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function unsafe(message: string, details: Record<string, unknown>): FlotillaError {
  return new FlotillaError('FLT_PATH_UNSAFE', message, { details });
}

/** An entry name: non-empty, at most 255 UTF-8 bytes, no `/`, no NUL, not `.` or `..`. */
export function checkEntryName(name: string): void {
  if (name.length === 0) throw unsafe('entry name is empty', { name });
  if (name === '.' || name === '..') throw unsafe(`entry name "${name}" is not allowed`, { name });
  if (name.includes('/')) throw unsafe(`entry name ${JSON.stringify(name)} contains "/"`, { name });
  if (name.includes('\0')) throw unsafe(`entry name ${JSON.stringify(name)} contains NUL`, { name });
  if (LONE_SURROGATE.test(name))
    throw unsafe(`entry name ${JSON.stringify(name)} is not valid Unicode`, { name });
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES)
    throw unsafe(`entry name is ${bytes} bytes, more than ${MAX_NAME_BYTES}`, { name });
}

/**
 * A symlink target, checked without knowing where the link is: relative, non-empty, at most 4095
 * bytes, no NUL, no empty component, and `..` only as a leading run. The last rule keeps the
 * escape check sound: `l/..` would climb out of whatever `l` resolves to (a symlink `l -> ..`
 * makes `l/../..` leave the tree although it looks harmless when read as text). Returns how many
 * levels the target climbs.
 */
export function checkSymlinkTarget(target: string): number {
  if (target.length === 0) throw unsafe('symlink target is empty', { target });
  if (target.includes('\0')) throw unsafe('symlink target contains NUL', { target });
  if (LONE_SURROGATE.test(target)) throw unsafe('symlink target is not valid Unicode', { target });
  if (target.startsWith('/')) throw unsafe(`symlink target "${target}" is absolute`, { target });
  const bytes = Buffer.byteLength(target, 'utf8');
  if (bytes > MAX_SYMLINK_TARGET_BYTES)
    throw unsafe(`symlink target is ${bytes} bytes, more than ${MAX_SYMLINK_TARGET_BYTES}`, { target });
  let climbs = 0;
  let descended = false;
  for (const component of target.split('/')) {
    if (component === '') throw unsafe(`symlink target "${target}" has an empty path component`, { target });
    if (component === '.') continue;
    if (component === '..') {
      if (descended)
        throw unsafe(`symlink target "${target}" has ".." after a name; only leading ".." is allowed`, {
          target,
        });
      climbs++;
    } else {
      descended = true;
    }
  }
  return climbs;
}

/**
 * A symlink in a directory `depth` levels below the root (root = 0) must not climb above the root.
 */
export function checkSymlinkWithinTree(target: string, depth: number, path: string): void {
  const climbs = checkSymlinkTarget(target);
  if (climbs > depth) {
    throw unsafe(`symlink ${path} -> ${target} escapes the tree`, { path, target, depth });
  }
}
