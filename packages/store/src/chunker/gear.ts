import { createHash } from 'node:crypto';

/** The seed of the gear table; changing it changes every chunk boundary (and every release id). */
export const GEAR_SEED = 'flotilla-fastcdc-gear-v1';

/**
 * FastCDC's gear table: 256 pseudo-random 32-bit words, derived from a fixed seed by SHA-256 in
 * counter mode so that any implementation can reproduce it without shipping the table.
 */
function deriveGearTable(seed: string): Uint32Array {
  const table = new Uint32Array(256);
  for (let block = 0; block < 32; block++) {
    const digest = createHash('sha256').update(`${seed}:${block}`).digest();
    for (let word = 0; word < 8; word++) table[block * 8 + word] = digest.readUInt32BE(word * 4);
  }
  return table;
}

export const GEAR: Uint32Array = deriveGearTable(GEAR_SEED);
