import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ObjectReader, StoreReader } from '../src/index.js';

/** Deterministic pseudo-random bytes (mulberry32), so test inputs need no fixtures. */
export function seededBytes(seed: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i += 4) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const word = (t ^ (t >>> 14)) >>> 0;
    for (let b = 0; b < 4 && i + b < length; b++) out[i + b] = (word >>> (8 * b)) & 0xff;
  }
  return out;
}

/** A deterministic random integer source for split sizes and the like. */
export function seededRandom(seed: number): (maxExclusive: number) => number {
  let state = seed >>> 0;
  return (maxExclusive) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 0x1_0000_0000) * maxExclusive);
  };
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-store-'));
  try {
    return await fn(dir);
  } finally {
    // Trees under test include read-only directories; make them writable so that cleanup also
    // works for a non-root user.
    execFileSync('chmod', ['-R', 'u+w', dir]);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Wraps a reader and records every object id requested. */
export function countingReader<R extends ObjectReader>(
  reader: R,
): { reader: StoreReader & R; requested: string[] } {
  const requested: string[] = [];
  const wrapped = Object.create(reader) as StoreReader & R;
  wrapped.getObject = (id: string) => {
    requested.push(id);
    return reader.getObject(id);
  };
  return { reader: wrapped, requested };
}
