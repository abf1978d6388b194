/**
 * Inode stamps: "the inode `ino` on device `dev`, of this size, mode and modification time, was
 * found to hold file object `fileId`". Staging records one for every file it verifies and links,
 * or writes, into a new tree; the next staging links a file whose inode still matches its stamp
 * without reading it again, as git trusts an index entry whose stat data is unchanged
 * (docs/store.md "Trusting files by stamp").
 *
 * What a stamp does not catch: a change that keeps size, mode and modification time (bit rot, or
 * content written and the time then set back with utimes). A writer able to do the latter can as
 * well change the hardlinked file after staging, which no verification at staging prevents.
 *
 * Racy stamps (git's term): a file written within the file system's timestamp granularity of the
 * moment its stamp is taken could be written again with the same modification time. Such stamps
 * are never recorded (`RACY_MARGIN_MS`); those files are verified by content the next time, and
 * stamped then. A file the agent writes itself is given a modification time before that margin
 * (`backdatedSeconds`), so that it can be stamped at once: any later write moves its time to now.
 */
import type { BigIntStats } from 'node:fs';
import { FlotillaError } from '@flotilla/protocol/errors';

export interface FileStamp {
  /** The file object the inode was verified against. */
  fileId: string;
  dev: bigint;
  ino: bigint;
  size: number;
  /** Permission bits (`mode & 0o7777`). */
  mode: number;
  mtimeNs: bigint;
}

/**
 * A stamp is recorded only for a file last modified at least this long before verification
 * began: wider than any Linux file system's timestamp granularity (FAT's 2 s included).
 */
export const RACY_MARGIN_MS = 3000;

/** Stamps by file object; a later stamp for the same inode replaces an earlier one. */
export class StampIndex {
  private readonly byFile = new Map<string, FileStamp[]>();
  private readonly byInode = new Map<bigint, FileStamp>();

  constructor(stamps: Iterable<FileStamp> = []) {
    this.add(stamps);
  }

  /** Adds stamps (files verified or written since the index was made, e.g. while staging waited). */
  add(stamps: Iterable<FileStamp>): void {
    for (const stamp of stamps) {
      const replaced = this.byInode.get(stamp.ino);
      if (replaced !== undefined) {
        const list = this.byFile.get(replaced.fileId)!;
        list.splice(list.indexOf(replaced), 1);
        if (list.length === 0) this.byFile.delete(replaced.fileId);
      }
      this.byInode.set(stamp.ino, stamp);
      const list = this.byFile.get(stamp.fileId);
      if (list === undefined) this.byFile.set(stamp.fileId, [stamp]);
      else list.push(stamp);
    }
  }

  /**
   * A stamp of `fileId`, if any: its size and mode are the file object's (every stamp of one file
   * object has the same), which is what staging needs of a file it expects to link on a stamp.
   */
  anyStampOf(fileId: string): FileStamp | undefined {
    return this.byFile.get(fileId)?.[0];
  }

  /** Whether `info` (an lstat) is an inode stamped as holding `fileId`, unchanged since. */
  vouchesFor(fileId: string, info: BigIntStats): boolean {
    const stamp = this.byFile.get(fileId)?.find((s) => s.ino === info.ino);
    return (
      stamp !== undefined &&
      info.isFile() &&
      stamp.dev === info.dev &&
      info.size === BigInt(stamp.size) &&
      Number(info.mode & 0o7777n) === stamp.mode &&
      stamp.mtimeNs === info.mtimeNs
    );
  }
}

/** The stamp of a file verified as `fileId`, or undefined if its modification time is too recent (racy). */
export function stampOf(fileId: string, info: BigIntStats, racyAfterNs: bigint): FileStamp | undefined {
  if (info.mtimeNs >= racyAfterNs) return undefined;
  return {
    fileId,
    dev: info.dev,
    ino: info.ino,
    size: Number(info.size),
    mode: Number(info.mode & 0o7777n),
    mtimeNs: info.mtimeNs,
  };
}

/** Modification times at or after this are racy for a verification that starts now. */
export function racyAfterNs(now = Date.now()): bigint {
  return BigInt(now - RACY_MARGIN_MS) * 1_000_000n;
}

/**
 * The modification time (in seconds, for futimes) to give a file written at `now` so that its
 * stamp, taken right after, is not racy: a second before `racyAfterNs(now)`.
 */
export function backdatedSeconds(now = Date.now()): number {
  return (now - RACY_MARGIN_MS - 1000) / 1000;
}

// Binary form: "FLTS", version (u8 = 1), three zero bytes, count (u32 LE), then per stamp:
// file id (32 bytes), dev, ino (u64), size (u64), mtime in ns (i64), mode (u32).
const MAGIC = 'FLTS';
const VERSION = 1;
const HEADER = 12;
const RECORD = 32 + 8 + 8 + 8 + 8 + 4;

/** Encodes stamps for storage (the agent keeps one blob per installed release). */
export function encodeStamps(stamps: readonly FileStamp[]): Buffer {
  const out = Buffer.alloc(HEADER + stamps.length * RECORD);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt8(VERSION, 4);
  out.writeUInt32LE(stamps.length, 8);
  let at = HEADER;
  for (const stamp of stamps) {
    if (out.write(stamp.fileId, at, 32, 'hex') !== 32 || !/^[0-9a-f]{64}$/.test(stamp.fileId))
      throw invalid('a stamp file id is not 64 lowercase hex digits');
    out.writeBigUInt64LE(stamp.dev, at + 32);
    out.writeBigUInt64LE(stamp.ino, at + 40);
    out.writeBigUInt64LE(BigInt(stamp.size), at + 48);
    out.writeBigInt64LE(stamp.mtimeNs, at + 56);
    out.writeUInt32LE(stamp.mode, at + 64);
    at += RECORD;
  }
  return out;
}

/** Decodes `encodeStamps` output; throws FLT_VALIDATION on anything else. */
export function decodeStamps(bytes: Uint8Array): FileStamp[] {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < HEADER || buffer.toString('latin1', 0, 4) !== MAGIC) throw invalid('not a stamp list');
  if (buffer.readUInt8(4) !== VERSION) throw invalid(`unknown stamp list version ${buffer.readUInt8(4)}`);
  const count = buffer.readUInt32LE(8);
  if (buffer.length !== HEADER + count * RECORD) throw invalid('stamp list length does not match its count');
  const stamps: FileStamp[] = new Array<FileStamp>(count);
  let at = HEADER;
  for (let i = 0; i < count; i++) {
    const size = buffer.readBigUInt64LE(at + 48);
    const mode = buffer.readUInt32LE(at + 64);
    if (size > BigInt(Number.MAX_SAFE_INTEGER) || mode > 0o7777) throw invalid('a stamp is out of range');
    stamps[i] = {
      fileId: buffer.toString('hex', at, at + 32),
      dev: buffer.readBigUInt64LE(at + 32),
      ino: buffer.readBigUInt64LE(at + 40),
      size: Number(size),
      mtimeNs: buffer.readBigInt64LE(at + 56),
      mode,
    };
    at += RECORD;
  }
  return stamps;
}

function invalid(message: string): FlotillaError {
  return new FlotillaError('FLT_VALIDATION', message);
}
