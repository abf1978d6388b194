/**
 * What rebuilding a file from a delta needs (the agent's rebuild workers), and nothing else: a
 * worker thread that imports this starts in a few tens of milliseconds, where the whole package
 * index (and the protocol's schemas behind it) took a quarter of a second.
 */
export { decodeDelta, usableAsDeltaBase } from './delta/zstd-delta.js';
export { verifyFileContent } from './delta/file-content.js';
export { contentId } from './objects/ids.js';
export type { FileObject } from './objects/types.js';
export { readExactlySync } from './tree/fd.js';
export { backdatedSeconds, racyAfterNs, stampOf } from './tree/stamps.js';
export type { FileStamp } from './tree/stamps.js';
