import { FlotillaError } from '@flotilla/protocol/errors';
import { contentId } from '../objects/ids.js';
import type { ChunkRef, FileObject } from '../objects/types.js';
import type { ChunkReader } from '../store-api.js';

/** Checks that `content` is exactly the chunks of `file`, hashing each slice; FLT_HASH_MISMATCH if not. */
export function verifyFileContent(file: Pick<FileObject, 'size' | 'chunks'>, content: Uint8Array): void {
  if (content.length !== file.size)
    throw new FlotillaError(
      'FLT_HASH_MISMATCH',
      `the content is ${content.length} bytes, the file object says ${file.size}`,
    );
  for (const { chunk, bytes } of splitIntoChunks(file.chunks, content)) {
    const actual = contentId(bytes);
    if (actual !== chunk.id)
      throw new FlotillaError('FLT_HASH_MISMATCH', `chunk ${chunk.id} of the content hashes to ${actual}`, {
        details: { chunk: chunk.id, actual },
      });
  }
}

/** The slices of `content` at the chunk boundaries of a file object (no copy, no check). */
export function* splitIntoChunks(
  chunks: readonly ChunkRef[],
  content: Uint8Array,
): Generator<{ chunk: ChunkRef; bytes: Uint8Array }> {
  let offset = 0;
  for (const chunk of chunks) {
    yield { chunk, bytes: content.subarray(offset, offset + chunk.size) };
    offset += chunk.size;
  }
}

/** The whole content of a file object, each chunk verified by hash as it is read. */
export async function readFileContent(
  reader: ChunkReader,
  file: Pick<FileObject, 'size' | 'chunks'>,
): Promise<Buffer> {
  const out = Buffer.allocUnsafe(file.size);
  let offset = 0;
  for (const chunk of file.chunks) {
    const bytes = await reader.getChunk(chunk.id);
    if (bytes.length !== chunk.size || offset + bytes.length > file.size || contentId(bytes) !== chunk.id)
      throw new FlotillaError('FLT_HASH_MISMATCH', `chunk ${chunk.id} does not match its hash or size`, {
        details: { chunk: chunk.id, size: chunk.size, got: bytes.length },
      });
    out.set(bytes, offset);
    offset += bytes.length;
  }
  if (offset !== file.size)
    throw new FlotillaError(
      'FLT_HASH_MISMATCH',
      `the chunks add up to ${offset} bytes, the file object says ${file.size}`,
    );
  return out;
}
