/**
 * Writes one layer of a release tree to the engine, shared by both deliveries (the loopback
 * registry's response and the `docker load` request): hashed as it streams, its last piece held
 * back until the hash is its diff id, so the engine never receives a whole layer that is not what
 * the signed config names. Each piece goes straight to the socket's writable (no stream in
 * between that would keep it), so its buffer is given back (`TreeFile.recycle`) once written out:
 * a 64 MiB layer in fresh 1 MiB buffers had V8 collect garbage whole every ~0.1 s.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import type { TreeLayer } from './tree-image.js';
import { layerMismatch } from './tree-image.js';

export type LayerWritten =
  | { ok: true }
  /** The layer is not its diff id (FLT_HASH_MISMATCH), or its source failed: nothing more was written. */
  | { ok: false; reason: 'mismatch' | 'source'; error: Error }
  /** The engine closed the connection (its own failure, which it reports). */
  | { ok: false; reason: 'closed'; error: Error };

/** Resolves once `out` can take more (or rejects once it is closed). */
function drained(out: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', closed);
      resolve();
    };
    const closed = (): void => {
      out.off('drain', done);
      reject(new Error('the engine closed the connection'));
    };
    out.on('drain', done);
    out.on('close', closed);
  });
}

/** Writes `bytes` to `out`, waiting while it is full; `written` runs once they are out. */
export async function writeOut(out: Writable, bytes: Uint8Array, written?: () => void): Promise<void> {
  if (out.destroyed) throw new Error('the engine closed the connection');
  if (!out.write(bytes, written)) await drained(out);
}

/**
 * Streams `layer` from byte `start` into `out` (the whole layer is read and hashed, a range
 * too). Ends nothing: the caller ends or destroys `out` by the result.
 */
export async function writeLayer(
  layer: TreeLayer,
  out: Writable,
  ref: string,
  start = 0,
): Promise<LayerWritten> {
  const hash = createHash('sha256');
  let offset = 0;
  let held: Uint8Array | null = null;
  // Once written out, a piece's memory may hold a later read of the layer (TreeFile.recycle).
  const recycle = (piece: Uint8Array) => () => layer.file.recycle?.(piece);
  const source = layer.file.pieces()[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Uint8Array>;
    try {
      next = await source.next();
    } catch (error) {
      return {
        ok: false,
        reason: 'source',
        error: error instanceof Error ? error : new Error(String(error)),
      };
    }
    if (next.done === true) break;
    const chunk = next.value;
    hash.update(chunk);
    const from = Math.max(0, start - offset);
    offset += chunk.length;
    if (from >= chunk.length) {
      recycle(chunk)();
      continue;
    }
    if (held) {
      try {
        await writeOut(out, held, recycle(held));
      } catch (error) {
        await source.return?.();
        return { ok: false, reason: 'closed', error: error as Error };
      }
    }
    held = from > 0 ? chunk.subarray(from) : chunk;
  }
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== layer.diffId || offset !== layer.size) {
    return { ok: false, reason: 'mismatch', error: layerMismatch(ref, layer, got) };
  }
  if (held) {
    try {
      await writeOut(out, held, recycle(held));
    } catch (error) {
      return { ok: false, reason: 'closed', error: error as Error };
    }
  }
  return { ok: true };
}
