/**
 * Whether a squashfs data block is so surely incompressible that deflating it would be wasted
 * work: the writer then stores it raw without trying (sqfs-writer.ts). Deflate at level 9 costs
 * about 3–4 ms of CPU per 128 KiB block whatever the data; on data that is already compressed
 * (gzip, JPEG, media, encrypted or random bytes) it only confirms that the block must be stored
 * raw. This check costs about a tenth of that.
 *
 * In the spirit of the Linux btrfs compression heuristic (fs/btrfs/compression.c,
 * `btrfs_compress_heuristic`: byte distribution, Shannon entropy, repeated patterns), but
 * deliberately more conservative, since a wrong "incompressible" costs image bytes: btrfs looks at
 * a 1/16 sample and gives up on compression at 80 % entropy or more than 200 common byte values;
 * here every byte is looked at, and a block is incompressible only when both hold:
 *
 * 1. **Entropy**: in every 16 KiB window (about the span of one deflate block, whose Huffman codes
 *    adapt to it), the order-0 Shannon entropy of the bytes, corrected for the window's size
 *    (Miller–Madow), is at least 7.97 bits per byte. Random bytes give 7.999 ± 0.003; text about
 *    4.5–5, base64 6, x86 code 5–6.5, a window with 1 KiB of text in it about 7.93. Below that
 *    threshold Huffman coding could save more than about 0.4 % of the window.
 * 2. **Repeats**: the block holds fewer than 512 bytes of repeated strings (what deflate's
 *    matches would replace). Every 16th offset is an anchor, its 4 bytes hashed into a table;
 *    every offset is looked up there, and a candidate counts when at least 16 bytes equal the
 *    anchor's (at most 258, deflate's longest match). Any repeat of 32 bytes or more is found,
 *    at any distance within the block, and random bytes have none (a chance 16-byte repeat has
 *    a probability of about 2^-100 per block).
 *
 * Blocks of less than 4 KiB are never judged (deflated, as before: they cost little). A block
 * judged compressible is deflated as before, so its bytes do not change; a block judged
 * incompressible is stored raw, as it would have been unless deflate could have saved less than
 * about 1 % of it.
 */

const WINDOW = 16 * 1024;
const MIN_BLOCK = 4 * 1024;
/** Bits per byte a window must reach (after the Miller–Madow correction). */
const MIN_ENTROPY = 7.97;
const ANCHOR_STEP = 16;
const MIN_MATCH = 16;
const MAX_MATCH = 258;
/** Repeated bytes in a block from which deflate gets its try. */
const MAX_REPEATED = 512;
const TABLE_BITS = 16;

const counts = new Uint32Array(256);
/** Anchor offsets by hash of their 4 bytes (-1: none), and those 4 bytes. */
const table = new Int32Array(1 << TABLE_BITS);
const values = new Uint32Array(1 << TABLE_BITS);
/** log2 of 0..WINDOW, so that the entropy loop does no Math.log2. */
const LOG2 = new Float64Array(WINDOW + MIN_BLOCK + 1);
for (let i = 1; i < LOG2.length; i++) LOG2[i] = Math.log2(i);

/** Order-0 entropy of block[start, end) in bits per byte, Miller–Madow corrected. */
export function windowEntropy(block: Uint8Array, start: number, end: number): number {
  counts.fill(0);
  for (let i = start; i < end; i++) {
    const b = block[i] as number;
    counts[b] = (counts[b] as number) + 1;
  }
  const n = end - start;
  let sum = 0;
  let used = 0;
  for (let s = 0; s < 256; s++) {
    const c = counts[s] as number;
    if (c === 0) continue;
    used++;
    sum += c * (LOG2[c] as number);
  }
  return (LOG2[n] as number) - sum / n + (used - 1) / (2 * n * Math.LN2);
}

/** Bytes of `block` covered by repeats of at least MIN_MATCH bytes, counted up to `limit`. */
export function repeatedBytes(block: Uint8Array, limit: number): number {
  const n = block.length;
  if (n < 4) return 0;
  table.fill(-1);
  let repeated = 0;
  let coveredUntil = 0;
  // v: the 4 bytes at offset s, big-endian (the low 32 bits are all that is kept).
  let v = ((block[0] as number) << 16) | ((block[1] as number) << 8) | (block[2] as number);
  for (let s = 0; s + 4 <= n; s++) {
    v = (v << 8) | (block[s + 3] as number);
    const h = Math.imul(v, 0x9e3779b1) >>> (32 - TABLE_BITS);
    const c = table[h] as number;
    if (c >= 0 && values[h] === v >>> 0 && s >= coveredUntil) {
      let k = 4;
      const most = Math.min(MAX_MATCH, n - s);
      while (k < most && block[c + k] === block[s + k]) k++;
      if (k >= MIN_MATCH) {
        repeated += k;
        if (repeated >= limit) return repeated;
        coveredUntil = s + k;
      }
    }
    if ((s & (ANCHOR_STEP - 1)) === 0) {
      table[h] = s;
      values[h] = v >>> 0;
    }
  }
  return repeated;
}

export function looksIncompressible(block: Uint8Array): boolean {
  const n = block.length;
  if (n < MIN_BLOCK) return false;
  for (let start = 0; start < n; start += WINDOW) {
    let end = Math.min(n, start + WINDOW);
    // A short last window joins the one before it (a small sample says little).
    if (n - end < MIN_BLOCK) end = n;
    if (windowEntropy(block, start, end) < MIN_ENTROPY) return false;
    if (end === n) break;
  }
  return repeatedBytes(block, MAX_REPEATED) < MAX_REPEATED;
}
