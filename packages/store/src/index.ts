export { GEAR_SEED } from './chunker/gear.js';
export { CHUNK_SIZE_LIMITS, DEFAULT_CHUNKER_OPTIONS, chunkerParams } from './chunker/params.js';
export type { ChunkerOptions, ChunkerParams } from './chunker/params.js';
export { chunkBuffer, cutPoint } from './chunker/fastcdc.js';
export type { ChunkSpan } from './chunker/fastcdc.js';
export { chunkStream } from './chunker/stream.js';
export type { ChunkSource } from './chunker/stream.js';
export {
  Codecs,
  DEFAULT_CODEC,
  DEFAULT_MAX_DECODED_BYTES,
  DEFAULT_ZSTD_LEVEL,
  FRAME_HEADER_LENGTH,
  decodeFrame,
  encodeFrame,
  readFrameHeader,
} from './codec/frame.js';
export type { CodecName, EncodeOptions, FrameHeader } from './codec/frame.js';
export type { ChunkRef, DirEntry, DirObject, EntryKind, FileObject, TreeObject } from './objects/types.js';
export { canonicalJson } from './objects/canonical.js';
export { encodeObject, parseDirObject, parseFileObject, parseObject } from './objects/encoding.js';
export type { EncodedObject } from './objects/encoding.js';
export { assertContentId, contentId, isContentId, verifyContentId } from './objects/ids.js';
export {
  DEFAULT_TREE_LIMITS,
  MAX_NAME_BYTES,
  MAX_SYMLINK_TARGET_BYTES,
  resolveLimits,
} from './objects/limits.js';
export type { TreeLimits } from './objects/limits.js';
export { checkEntryName, checkSymlinkTarget, checkSymlinkWithinTree } from './objects/paths.js';
export { compareNames } from './objects/validate.js';
export type { ChunkReader, ObjectReader, ObjectSink, ParsedObjectReader, StoreReader } from './store-api.js';
export { MemoryStore } from './memory-store.js';
export { FsStore } from './fs-store/fs-store.js';
export type { FsStoreOptions } from './fs-store/fs-store.js';
export { buildTree } from './tree/build.js';
export type { BuildOptions, BuildResult, BuildStats } from './tree/build.js';
export { walkTree } from './tree/walk.js';
export type { WalkItem, WalkOptions } from './tree/walk.js';
export { diffTrees } from './tree/diff.js';
export type { DiffOptions, EntryChange, EntryModification, TreeDiff } from './tree/diff.js';
export { materialize } from './tree/materialize.js';
export type { MaterializeOptions, MaterializeStats } from './tree/materialize.js';
export { verifyTree } from './tree/verify.js';
export type { TreeProblem, VerifyOptions, VerifyResult } from './tree/verify.js';
export {
  DEFAULT_DELTA_LEVEL,
  DEFAULT_MAX_DELTA_FILE_BYTES,
  decodeDelta,
  encodeDelta,
  usableAsDeltaBase,
} from './delta/zstd-delta.js';
export type { DeltaEncodeOptions } from './delta/zstd-delta.js';
export type { DeltaEncodeReply, DeltaEncodeTask } from './delta/encode-worker.js';
export {
  DeltaKind,
  deltaPairKey,
  deltaRecordBytes,
  readDeltaPack,
  writeDeltaPack,
} from './delta/delta-pack.js';
export type { DeltaRecord, ReadDeltaPackOptions } from './delta/delta-pack.js';
export { readFileContent, splitIntoChunks, verifyFileContent } from './delta/file-content.js';
export { syncFilesystem } from './fs-sync.js';
export type { Durability } from './tree/materialize.js';
export type { ReuseMode, ReuseSource } from './tree/reuse.js';
export { mapBounded, runBounded } from './tree/pool.js';
export {
  RACY_MARGIN_MS,
  StampIndex,
  backdatedSeconds,
  decodeStamps,
  encodeStamps,
  racyAfterNs,
  stampOf,
} from './tree/stamps.js';
export type { FileStamp } from './tree/stamps.js';
export { readExactlySync } from './tree/fd.js';
