import { GEAR } from './gear.js';
import { resolveChunkerParams } from './params.js';
import type { ChunkerOptions, ChunkerParams } from './params.js';

/** A chunk of a buffer: `length` bytes starting at `offset`. */
export interface ChunkSpan {
  offset: number;
  length: number;
}

/**
 * FastCDC cut point (Xia et al., 2016/2020): the length of the chunk that starts at `start`, looking
 * at no more than `end - start` bytes. Gear hashing starts at `minSize` (cut-point skipping); before
 * `avgSize` the harder mask applies, after it the easier one (normalized chunking). The result
 * depends only on the bytes from `start` to `start + maxSize`, which is what lets the streaming
 * chunker find the same boundaries as the whole-buffer one.
 */
export function cutPoint(data: Uint8Array, start: number, end: number, params: ChunkerParams): number {
  const available = end - start;
  if (available <= params.minSize) return available;
  const limit = start + Math.min(available, params.maxSize);
  const normal = start + Math.min(available, params.avgSize);
  const gear = GEAR;
  const maskS = params.maskS;
  const maskL = params.maskL;
  let hash = 0;
  let i = start + params.minSize;
  // Unrolled by two bytes (same cut points as one byte at a time): about 30 % faster in V8.
  const normalPairs = normal - ((normal - i) & 1);
  for (; i < normalPairs; i += 2) {
    hash = ((hash << 1) + gear[data[i]!]!) | 0;
    if ((hash & maskS) === 0) return i + 1 - start;
    hash = ((hash << 1) + gear[data[i + 1]!]!) | 0;
    if ((hash & maskS) === 0) return i + 2 - start;
  }
  if (i < normal) {
    hash = ((hash << 1) + gear[data[i]!]!) | 0;
    if ((hash & maskS) === 0) return i + 1 - start;
    i++;
  }
  const limitPairs = limit - ((limit - i) & 1);
  for (; i < limitPairs; i += 2) {
    hash = ((hash << 1) + gear[data[i]!]!) | 0;
    if ((hash & maskL) === 0) return i + 1 - start;
    hash = ((hash << 1) + gear[data[i + 1]!]!) | 0;
    if ((hash & maskL) === 0) return i + 2 - start;
  }
  if (i < limit) {
    hash = ((hash << 1) + gear[data[i]!]!) | 0;
    if ((hash & maskL) === 0) return i + 1 - start;
  }
  return limit - start;
}

/** Splits a whole buffer into content-defined chunks. An empty buffer has no chunks. */
export function chunkBuffer(data: Uint8Array, options: ChunkerOptions | ChunkerParams = {}): ChunkSpan[] {
  const params = resolveChunkerParams(options);
  const spans: ChunkSpan[] = [];
  let offset = 0;
  while (offset < data.length) {
    const length = cutPoint(data, offset, data.length, params);
    spans.push({ offset, length });
    offset += length;
  }
  return spans;
}
