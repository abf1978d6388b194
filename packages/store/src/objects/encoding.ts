import { FlotillaError } from '@flotilla/protocol';
import { canonicalJson } from './canonical.js';
import type { CanonicalValue } from './canonical.js';
import { contentId, verifyContentId } from './ids.js';
import { resolveLimits } from './limits.js';
import type { TreeLimits } from './limits.js';
import type { DirObject, FileObject, TreeObject } from './types.js';
import { validateObject } from './validate.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An object together with its canonical bytes and id (SHA-256 of the bytes). */
export interface EncodedObject<T extends TreeObject = TreeObject> {
  id: string;
  bytes: Buffer;
  object: T;
}

function toCanonical(object: TreeObject): CanonicalValue {
  if (object.type === 'file') {
    return {
      type: 'file',
      mode: object.mode,
      size: object.size,
      chunks: object.chunks.map((c) => ({ id: c.id, size: c.size })),
    };
  }
  return {
    type: 'dir',
    entries: object.entries.map((e) => ({
      name: e.name,
      kind: e.kind,
      hash: e.hash,
      target: e.target,
      mode: e.mode,
    })),
  };
}

/**
 * Validates an object and returns its canonical encoding and id. Producers go through here, so an
 * invalid object is never written.
 */
export function encodeObject<T extends TreeObject>(
  object: T,
  limits: Partial<TreeLimits> = {},
): EncodedObject<T> {
  const resolved = resolveLimits(limits);
  const checked = validateObject(toCanonical(object), resolved) as T;
  const bytes = Buffer.from(canonicalJson(toCanonical(checked)), 'utf8');
  if (bytes.length > resolved.maxObjectBytes) {
    throw new FlotillaError(
      'FLT_LIMIT_EXCEEDED',
      `object encodes to ${bytes.length} bytes, more than ${resolved.maxObjectBytes}`,
      {
        details: { bytes: bytes.length },
      },
    );
  }
  return { id: contentId(bytes), bytes, object: checked };
}

/**
 * Parses untrusted bytes as a tree object: size limit, strict UTF-8, JSON, schema and names,
 * and the bytes must be exactly the canonical encoding (one object, one id). With `expectedId`
 * the bytes must also hash to it (FLT_HASH_MISMATCH).
 */
export function parseObject(
  bytes: Uint8Array,
  options: { expectedId?: string; limits?: Partial<TreeLimits> } = {},
): TreeObject {
  const limits = resolveLimits(options.limits);
  if (bytes.length > limits.maxObjectBytes) {
    throw new FlotillaError(
      'FLT_LIMIT_EXCEEDED',
      `object is ${bytes.length} bytes, more than ${limits.maxObjectBytes}`,
      {
        details: { bytes: bytes.length },
      },
    );
  }
  if (options.expectedId !== undefined) verifyContentId(options.expectedId, bytes);
  let text: string;
  let value: unknown;
  try {
    text = utf8.decode(bytes);
    value = JSON.parse(text);
  } catch (cause) {
    throw new FlotillaError('FLT_MANIFEST_INVALID', 'object is not UTF-8 JSON', { cause });
  }
  const object = validateObject(value, limits);
  if (canonicalJson(toCanonical(object)) !== text) {
    throw new FlotillaError(
      'FLT_MANIFEST_INVALID',
      'object is not in canonical encoding (key order, whitespace, duplicate keys or escapes)',
    );
  }
  return object;
}

/** Like parseObject, but requires a directory object. */
export function parseDirObject(
  bytes: Uint8Array,
  options: { expectedId?: string; limits?: Partial<TreeLimits> } = {},
): DirObject {
  const object = parseObject(bytes, options);
  if (object.type !== 'dir')
    throw new FlotillaError('FLT_MANIFEST_INVALID', 'expected a directory object, found a file object');
  return object;
}

/** Like parseObject, but requires a file object. */
export function parseFileObject(
  bytes: Uint8Array,
  options: { expectedId?: string; limits?: Partial<TreeLimits> } = {},
): FileObject {
  const object = parseObject(bytes, options);
  if (object.type !== 'file')
    throw new FlotillaError('FLT_MANIFEST_INVALID', 'expected a file object, found a directory object');
  return object;
}
