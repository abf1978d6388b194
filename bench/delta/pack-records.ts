/**
 * Splits an uncompressed pack (protocol `releases.ts`): `[32-byte id][u32 BE length][bytes]`…, ended
 * by 32 zero bytes. The bench trusts its own server, so ids are not re-hashed here; the device's
 * `FsStore` verifies every id it is given bytes for.
 */
const ID_BYTES = 32;
const HEADER_BYTES = ID_BYTES + 4;

export interface PackRecordBytes {
  id: string;
  bytes: Buffer;
}

/** The records of a pack in order; throws if the pack ends before its terminator. */
export async function* packRecords(source: AsyncIterable<Buffer>): AsyncGenerator<PackRecordBytes> {
  let buffered: Buffer = Buffer.alloc(0);
  for await (const piece of source) {
    buffered = buffered.length === 0 ? piece : Buffer.concat([buffered, piece]);
    for (;;) {
      if (buffered.length < ID_BYTES) break;
      const id = buffered.subarray(0, ID_BYTES);
      if (id.every((b) => b === 0)) return;
      if (buffered.length < HEADER_BYTES) break;
      const length = buffered.readUInt32BE(ID_BYTES);
      if (buffered.length < HEADER_BYTES + length) break;
      yield {
        id: id.toString('hex'),
        bytes: Buffer.from(buffered.subarray(HEADER_BYTES, HEADER_BYTES + length)),
      };
      buffered = buffered.subarray(HEADER_BYTES + length);
    }
  }
  throw new Error('the pack ended before its terminator');
}
