/**
 * The pack format of protocol `releases.ts`: records `[32-byte raw SHA-256 id][u32 big-endian
 * length][raw bytes]`, ended by 32 zero bytes, the whole compressed as one stream.
 */
import { promisify } from 'node:util';
import { brotliCompress, constants as zlib } from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';
import type { PackCodec } from '@flotilla/protocol';

export interface PackRecord {
  id: string;
  bytes: Uint8Array;
}

const ID_BYTES = 32;
const END = Buffer.alloc(ID_BYTES);
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The uncompressed pack of `records`. */
export function encodePack(records: readonly PackRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const { id, bytes } of records) {
    if (!SHA256_HEX.test(id)) throw new FlotillaError('FLT_VALIDATION', `not an object id: ${id}`);
    if (bytes.length > 0xffffffff)
      throw new FlotillaError('FLT_LIMIT_EXCEEDED', `object ${id} exceeds 4 GiB`);
    const header = Buffer.allocUnsafe(ID_BYTES + 4);
    header.write(id, 0, 'hex');
    header.writeUInt32BE(bytes.length, ID_BYTES);
    parts.push(header, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  }
  parts.push(END);
  return Buffer.concat(parts);
}

/**
 * Brotli (node:zlib, no native dependency) at quality 5: close to zstd's ratio on source trees at
 * a speed well above a typical uplink.
 */
export const UPLOAD_CODEC: PackCodec = 'br';
const brotli = promisify(brotliCompress);

export function compressPack(pack: Buffer): Promise<Buffer> {
  return brotli(pack, {
    params: { [zlib.BROTLI_PARAM_QUALITY]: 5, [zlib.BROTLI_PARAM_SIZE_HINT]: pack.length },
  });
}
