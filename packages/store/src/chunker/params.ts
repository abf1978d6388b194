import { FlotillaError } from '@flotilla/protocol';

/** Chunk sizes in bytes. `avgSize` must be a power of two; `minSize < avgSize < maxSize`. */
export interface ChunkerOptions {
  /** Smallest chunk except the last one of a file, bytes (default 16 KiB). */
  minSize?: number;
  /** Target average chunk size, bytes, a power of two (default 64 KiB). */
  avgSize?: number;
  /** Largest chunk, bytes (default 256 KiB). */
  maxSize?: number;
}

/** Validated chunker parameters with the two masks of normalized chunking. */
export interface ChunkerParams {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
  /** Harder mask (more bits) used before `avgSize`: fewer cut points below the average. */
  readonly maskS: number;
  /** Easier mask (fewer bits) used after `avgSize`: more cut points above the average. */
  readonly maskL: number;
}

export const DEFAULT_CHUNKER_OPTIONS = {
  minSize: 16 * 1024,
  avgSize: 64 * 1024,
  maxSize: 256 * 1024,
} as const;

/** Bounds on the configurable sizes: avg from 256 B to 4 MiB, max up to 16 MiB. */
export const CHUNK_SIZE_LIMITS = { minAvg: 256, maxAvg: 4 * 1024 * 1024, maxMax: 16 * 1024 * 1024 } as const;

// FastCDC 2020, normalization level 2: the masks have log2(avg) ± 2 bits.
const NORMALIZATION_LEVEL = 2;

/** A mask with `bits` one-bits at the top of the 32-bit word, where the gear hash mixes the most bytes. */
function topBitsMask(bits: number): number {
  return (0xffffffff << (32 - bits)) | 0;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Validates chunker options and derives the masks; throws FLT_VALIDATION on any bad size. */
export function chunkerParams(options: ChunkerOptions = {}): ChunkerParams {
  const minSize = options.minSize ?? DEFAULT_CHUNKER_OPTIONS.minSize;
  const avgSize = options.avgSize ?? DEFAULT_CHUNKER_OPTIONS.avgSize;
  const maxSize = options.maxSize ?? DEFAULT_CHUNKER_OPTIONS.maxSize;
  const problems: string[] = [];
  for (const [name, value] of [
    ['minSize', minSize],
    ['avgSize', avgSize],
    ['maxSize', maxSize],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0)
      problems.push(`${name} must be a positive integer (got ${String(value)})`);
  }
  if (problems.length === 0) {
    if (!isPowerOfTwo(avgSize)) problems.push(`avgSize must be a power of two (got ${avgSize})`);
    if (avgSize < CHUNK_SIZE_LIMITS.minAvg || avgSize > CHUNK_SIZE_LIMITS.maxAvg) {
      problems.push(
        `avgSize must be between ${CHUNK_SIZE_LIMITS.minAvg} and ${CHUNK_SIZE_LIMITS.maxAvg} bytes`,
      );
    }
    if (!(minSize < avgSize)) problems.push(`minSize (${minSize}) must be smaller than avgSize (${avgSize})`);
    if (!(avgSize < maxSize)) problems.push(`maxSize (${maxSize}) must be larger than avgSize (${avgSize})`);
    if (maxSize > CHUNK_SIZE_LIMITS.maxMax)
      problems.push(`maxSize must be at most ${CHUNK_SIZE_LIMITS.maxMax} bytes`);
  }
  if (problems.length > 0) {
    throw new FlotillaError('FLT_VALIDATION', `invalid chunker options: ${problems.join('; ')}`, {
      details: { problems, options: { minSize, avgSize, maxSize } },
    });
  }
  const bits = Math.log2(avgSize);
  const params: ChunkerParams = Object.freeze({
    minSize,
    avgSize,
    maxSize,
    maskS: topBitsMask(bits + NORMALIZATION_LEVEL),
    maskL: topBitsMask(bits - NORMALIZATION_LEVEL),
  });
  validated.add(params);
  return params;
}

// Params objects produced by chunkerParams(); anything else is validated again.
const validated = new WeakSet<ChunkerParams>();

/** Accepts either options or already validated params; never trusts a hand-made params object. */
export function resolveChunkerParams(options: ChunkerOptions | ChunkerParams = {}): ChunkerParams {
  if (validated.has(options as ChunkerParams)) return options as ChunkerParams;
  return chunkerParams({ minSize: options.minSize, avgSize: options.avgSize, maxSize: options.maxSize });
}
