/**
 * A squashfs 4.0 writer (gzip, 128 KiB blocks, no fragments), written here rather than run as
 * `sqfstar` so that a conversion can copy the compressed data blocks of files it already wrote
 * in an earlier image instead of compressing them again (see reuse.ts). Squashfs compresses each
 * data block on its own, so a file's blocks do not depend on anything else in the image: copied
 * blocks are the bytes compression would give. The output is reproducible: files' data in byte
 * order of their paths, inodes numbered in one fixed walk, every time 0, ids and xattr sets in
 * order of first use; the same root file system always gives the same bytes, copied or not.
 *
 * Layout as mksquashfs writes it: superblock, data blocks, inode table, directory table, id table,
 * xattr table; metadata in 8 KiB blocks compressed when that is smaller. File tails are not packed
 * into fragments (each file's last block is a short block), which costs some bytes on images of
 * many small files and keeps every file's blocks its own.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { deflate, deflateSync } from 'node:zlib';
import { promisify } from 'node:util';
import { FlotillaError } from '@flotilla/protocol';
import { WriteBatch } from '../write-batch.js';
import { looksIncompressible } from './incompressible.js';
import type { FileContent, Node } from './rootfs.js';

const deflateAsync = promisify(deflate);

export const BLOCK_SIZE = 128 * 1024;
const BLOCK_LOG = 17;
const METADATA_SIZE = 8192;
const UNCOMPRESSED_BLOCK = 1 << 24;
const GZIP_ID = 1;
const INVALID = 0xffffffffffffffffn;
/** Blocks compressed (or copied) ahead of the one being written. */
const IN_FLIGHT = 8;

/** Where a file's data blocks are in an image: start offset and each block's size word. */
export interface BlockLocation {
  start: number;
  /** Per block: bytes on disk, with bit 24 set when the block is stored uncompressed. */
  words: number[];
}

/** An earlier image whose blocks may be copied, by file origin (see FileContent.origin). */
export interface BlockSource {
  file: FileHandle;
  blocks: ReadonlyMap<string, BlockLocation>;
}

export interface WrittenImage {
  sha256: string;
  bytes: number;
  /** Every regular file's blocks in this image, by origin. */
  blocks: Map<string, BlockLocation>;
  /** Bytes of file data copied from the source image instead of compressed. */
  copiedBytes: number;
}

const TYPE = { dir: 1, file: 2, symlink: 3, block: 4, char: 5, fifo: 6 } as const;
const XATTR_PREFIXES: [string, number][] = [
  ['user.', 0],
  ['trusted.', 1],
  ['security.', 2],
];

const storedBytes = (word: number): number => word & (UNCOMPRESSED_BLOCK - 1);

/** 8 KiB metadata blocks, each with its 2-byte header; refs are (block start << 16) | offset. */
class MetadataWriter {
  readonly blocks: Buffer[] = [];
  /** Offset (from the table's start) of each flushed block. */
  readonly starts: number[] = [];
  written = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  ref(): bigint {
    return (BigInt(this.written) << 16n) | BigInt(this.pendingBytes);
  }

  get position(): { block: number; offset: number } {
    return { block: this.written, offset: this.pendingBytes };
  }

  put(bytes: Buffer): void {
    let rest = bytes;
    while (rest.length > 0) {
      const take = Math.min(rest.length, METADATA_SIZE - this.pendingBytes);
      this.pending.push(rest.subarray(0, take));
      this.pendingBytes += take;
      rest = rest.subarray(take);
      if (this.pendingBytes === METADATA_SIZE) this.flush();
    }
  }

  flush(): void {
    if (this.pendingBytes === 0) return;
    const raw = Buffer.concat(this.pending);
    const packed = deflateSync(raw, { level: 9 });
    const header = Buffer.alloc(2);
    const body = packed.length < raw.length ? packed : raw;
    header.writeUInt16LE(packed.length < raw.length ? packed.length : raw.length | 0x8000);
    this.blocks.push(header, body);
    this.starts.push(this.written);
    this.written += 2 + body.length;
    this.pending = [];
    this.pendingBytes = 0;
  }

  finish(): Buffer {
    this.flush();
    return Buffer.concat(this.blocks);
  }
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Linux's new_encode_dev, as squashfs stores device numbers. */
function deviceNumber(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

interface Placed {
  ref: bigint;
  number: number;
  type: number;
}

/**
 * Writes `nodes` (path → node, '' the root) as a squashfs file at `outPath` (created, or
 * truncated) and returns its SHA-256. `contentPath(content)` is where a file's bytes are on disk
 * when they must be compressed; with `source`, files whose origin it holds are copied from it.
 */
export async function writeSquashfsImage(
  nodes: ReadonlyMap<string, Node>,
  outPath: string,
  contentPath: (content: FileContent, path: string) => string,
  source: BlockSource | null,
  signal?: AbortSignal,
): Promise<WrittenImage> {
  const paths = [...nodes.keys()].filter((p) => p !== '').sort(byBytes);
  const out = await open(outPath, 'w', 0o644);
  try {
    // Data: each file's blocks once (a hard link shares its content), in path order.
    const located = new Map<FileContent, BlockLocation>();
    const blocks = new Map<string, BlockLocation>();
    let pos = 96;
    let copiedBytes = 0;
    const queue: { loc: BlockLocation; data: Promise<{ bytes: Buffer; word: number }> }[] = [];
    // Finished blocks are written about 1 MiB at a time (one writev): fewer calls.
    const batch = new WriteBatch(out, pos);
    const writeOne = async (): Promise<void> => {
      const item = queue.shift();
      if (!item) return;
      const { bytes, word } = await item.data;
      if (item.loc.words.length === 0) item.loc.start = pos;
      item.loc.words.push(word);
      pos += bytes.length;
      await batch.push(bytes);
    };
    const push = async (
      loc: BlockLocation,
      data: Promise<{ bytes: Buffer; word: number }>,
    ): Promise<void> => {
      data.catch(() => undefined);
      queue.push({ loc, data });
      if (queue.length >= IN_FLIGHT) await writeOne();
    };
    for (const path of paths) {
      const node = nodes.get(path) as Node;
      if (node.type !== 'file' || !node.content || located.has(node.content)) continue;
      if (signal?.aborted) throw new FlotillaError('FLT_UNAVAILABLE', 'the conversion was cancelled');
      const content = node.content;
      const loc: BlockLocation = { start: pos, words: [] };
      located.set(content, loc);
      blocks.set(content.origin, loc);
      const count = Math.ceil(content.size / BLOCK_SIZE);
      const earlier = source?.blocks.get(content.origin);
      if (earlier && earlier.words.length === count && source) {
        let at = earlier.start;
        for (const word of earlier.words) {
          const length = storedBytes(word);
          const from = at;
          await push(
            loc,
            readExactly(source.file, from, length).then((bytes) => ({ bytes, word })),
          );
          at += length;
          copiedBytes += length;
        }
        continue;
      }
      if (count === 0) continue;
      const input = await open(contentPath(content, path), 'r');
      try {
        for (let i = 0; i < count; i++) {
          const length = Math.min(BLOCK_SIZE, content.size - i * BLOCK_SIZE);
          const raw = await readExactly(input, i * BLOCK_SIZE, length);
          await push(loc, compressBlock(raw));
        }
      } finally {
        await input.close();
      }
    }
    while (queue.length > 0) await writeOne();
    await batch.flush();
    for (const loc of located.values()) if (loc.words.length === 0) loc.start = pos;

    // Inodes, numbered by one walk (children before their directory), then the directories.
    const ids: number[] = [];
    const idIndex = new Map<number, number>();
    const idOf = (value: number): number => {
      let index = idIndex.get(value);
      if (index === undefined) {
        index = ids.length;
        if (index > 0xffff) throw new FlotillaError('FLT_LIMIT_EXCEEDED', 'more than 65536 owner ids');
        ids.push(value);
        idIndex.set(value, index);
      }
      return index;
    };
    const xattrSets: Buffer[] = [];
    const xattrSetIndex = new Map<string, number>();
    const xattrOf = (node: Node): number => {
      const encoded = encodeXattrs(node.xattrs);
      if (encoded === null) return 0xffffffff;
      const key = encoded.toString('base64');
      let index = xattrSetIndex.get(key);
      if (index === undefined) {
        index = xattrSets.length;
        xattrSets.push(encoded);
        xattrSetIndex.set(key, index);
      }
      return index;
    };

    const children = new Map<string, string[]>();
    for (const path of paths) {
      const slash = path.lastIndexOf('/');
      const parent = slash < 0 ? '' : path.slice(0, slash);
      let list = children.get(parent);
      if (!list) children.set(parent, (list = []));
      list.push(path);
    }
    const linkCount = new Map<FileContent, number>();
    for (const node of nodes.values()) {
      if (node.type === 'file' && node.content)
        linkCount.set(node.content, (linkCount.get(node.content) ?? 0) + 1);
    }
    const nameOf = (path: string): string => path.slice(path.lastIndexOf('/') + 1);
    const childList = (dir: string): string[] =>
      (children.get(dir) ?? []).sort((a, b) => byBytes(nameOf(a), nameOf(b)));

    // Numbers first: a directory's inode names its parent's number.
    const numbers = new Map<string, number>();
    const contentNumbers = new Map<FileContent, number>();
    let next = 1;
    const numberWalk = (dir: string): void => {
      for (const child of childList(dir)) {
        const node = nodes.get(child) as Node;
        if (node.type === 'dir') numberWalk(child);
        else if (node.type === 'file' && node.content) {
          let n = contentNumbers.get(node.content);
          if (n === undefined) contentNumbers.set(node.content, (n = next++));
          numbers.set(child, n);
        } else numbers.set(child, next++);
      }
      numbers.set(dir, next++);
    };
    numberWalk('');
    const inodeCount = next - 1;

    const inodes = new MetadataWriter();
    const dirs = new MetadataWriter();
    const placedContent = new Map<FileContent, Placed>();
    const header = (type: number, node: Node, number: number): Buffer => {
      const b = Buffer.alloc(16);
      b.writeUInt16LE(type, 0);
      b.writeUInt16LE(node.mode & 0o7777, 2);
      b.writeUInt16LE(idOf(node.uid), 4);
      b.writeUInt16LE(idOf(node.gid), 6);
      b.writeUInt32LE(0, 8);
      b.writeUInt32LE(number, 12);
      return b;
    };
    const placeLeaf = (path: string, node: Node): Placed => {
      const number = numbers.get(path) as number;
      const xattr = xattrOf(node);
      const ref = inodes.ref();
      switch (node.type) {
        case 'file': {
          const content = node.content as FileContent;
          const loc = located.get(content) as BlockLocation;
          const nlink = linkCount.get(content) ?? 1;
          const words = Buffer.alloc(4 * loc.words.length);
          loc.words.forEach((w, i) => words.writeUInt32LE(w, 4 * i));
          if (nlink === 1 && xattr === 0xffffffff && content.size < 2 ** 32 && loc.start < 2 ** 32) {
            const b = Buffer.alloc(16);
            b.writeUInt32LE(loc.start, 0);
            b.writeUInt32LE(0xffffffff, 4);
            b.writeUInt32LE(0, 8);
            b.writeUInt32LE(content.size, 12);
            inodes.put(Buffer.concat([header(TYPE.file, node, number), b, words]));
          } else {
            const b = Buffer.alloc(40);
            b.writeBigUInt64LE(BigInt(loc.start), 0);
            b.writeBigUInt64LE(BigInt(content.size), 8);
            b.writeBigUInt64LE(0n, 16);
            b.writeUInt32LE(nlink, 24);
            b.writeUInt32LE(0xffffffff, 28);
            b.writeUInt32LE(0, 32);
            b.writeUInt32LE(xattr, 36);
            inodes.put(Buffer.concat([header(TYPE.file + 7, node, number), b, words]));
          }
          return { ref, number, type: TYPE.file };
        }
        case 'symlink': {
          const target = Buffer.from(node.target ?? '');
          const ext = xattr !== 0xffffffff;
          const b = Buffer.alloc(8 + target.length + (ext ? 4 : 0));
          b.writeUInt32LE(1, 0);
          b.writeUInt32LE(target.length, 4);
          target.copy(b, 8);
          if (ext) b.writeUInt32LE(xattr, 8 + target.length);
          inodes.put(Buffer.concat([header(TYPE.symlink + (ext ? 7 : 0), node, number), b]));
          return { ref, number, type: TYPE.symlink };
        }
        case 'char':
        case 'block':
        case 'fifo': {
          const ext = xattr !== 0xffffffff;
          const device = node.type !== 'fifo';
          const b = Buffer.alloc(4 + (device ? 4 : 0) + (ext ? 4 : 0));
          b.writeUInt32LE(1, 0);
          if (device) b.writeUInt32LE(deviceNumber(node.devmajor ?? 0, node.devminor ?? 0), 4);
          if (ext) b.writeUInt32LE(xattr, b.length - 4);
          inodes.put(Buffer.concat([header(TYPE[node.type] + (ext ? 7 : 0), node, number), b]));
          return { ref, number, type: TYPE[node.type] };
        }
        default:
          throw new Error(`not a leaf: ${node.type}`);
      }
    };
    const placeDir = (dir: string, parentNumber: number): Placed => {
      const entries: { name: Buffer; placed: Placed }[] = [];
      let subdirs = 0;
      for (const child of childList(dir)) {
        const node = nodes.get(child) as Node;
        let placed: Placed;
        if (node.type === 'dir') {
          subdirs++;
          placed = placeDir(child, numbers.get(dir) as number);
        } else if (node.type === 'file' && node.content && placedContent.has(node.content)) {
          placed = placedContent.get(node.content) as Placed;
        } else {
          placed = placeLeaf(child, node);
          if (node.type === 'file' && node.content) placedContent.set(node.content, placed);
        }
        const name = Buffer.from(nameOf(child));
        if (name.length > 256)
          throw new FlotillaError('FLT_LAYER_INVALID', `${child}: a name longer than 256 bytes`);
        entries.push({ name, placed });
      }
      // The listing: runs of at most 256 entries sharing an inode block and a base number.
      const listingAt = dirs.position;
      let listingBytes = 0;
      for (let i = 0; i < entries.length;) {
        const first = entries[i] as { name: Buffer; placed: Placed };
        const block = first.placed.ref >> 16n;
        const base = first.placed.number;
        let j = i;
        while (
          j < entries.length &&
          j - i < 256 &&
          (entries[j] as { placed: Placed }).placed.ref >> 16n === block &&
          Math.abs((entries[j] as { placed: Placed }).placed.number - base) <= 32767
        )
          j++;
        const h = Buffer.alloc(12);
        h.writeUInt32LE(j - i - 1, 0);
        h.writeUInt32LE(Number(block), 4);
        h.writeUInt32LE(base, 8);
        dirs.put(h);
        listingBytes += 12;
        for (let k = i; k < j; k++) {
          const { name, placed } = entries[k] as { name: Buffer; placed: Placed };
          const e = Buffer.alloc(8);
          e.writeUInt16LE(Number(placed.ref & 0xffffn), 0);
          e.writeInt16LE(placed.number - base, 2);
          e.writeUInt16LE(placed.type, 4);
          e.writeUInt16LE(name.length - 1, 6);
          dirs.put(Buffer.concat([e, name]));
          listingBytes += 8 + name.length;
        }
        i = j;
      }
      const node = nodes.get(dir) as Node;
      const number = numbers.get(dir) as number;
      const xattr = xattrOf(node);
      const ref = inodes.ref();
      const fileSize = listingBytes + 3;
      if (xattr === 0xffffffff && fileSize <= 0xffff) {
        const b = Buffer.alloc(16);
        b.writeUInt32LE(listingAt.block, 0);
        b.writeUInt32LE(2 + subdirs, 4);
        b.writeUInt16LE(fileSize, 8);
        b.writeUInt16LE(listingAt.offset, 10);
        b.writeUInt32LE(parentNumber, 12);
        inodes.put(Buffer.concat([header(TYPE.dir, node, number), b]));
      } else {
        const b = Buffer.alloc(24);
        b.writeUInt32LE(2 + subdirs, 0);
        b.writeUInt32LE(fileSize, 4);
        b.writeUInt32LE(listingAt.block, 8);
        b.writeUInt32LE(parentNumber, 12);
        b.writeUInt16LE(0, 16);
        b.writeUInt16LE(listingAt.offset, 18);
        b.writeUInt32LE(xattr, 20);
        inodes.put(Buffer.concat([header(TYPE.dir + 7, node, number), b]));
      }
      return { ref, number, type: TYPE.dir };
    };
    const root = placeDir('', inodeCount + 1);

    // Tables after the data, each pointer absolute.
    const inodeTableStart = pos;
    const inodeTable = inodes.finish();
    const directoryTableStart = inodeTableStart + inodeTable.length;
    const directoryTable = dirs.finish();
    const tablesStart = directoryTableStart + directoryTable.length;
    const [idTable, idTableStart] = lookupTable(
      tablesStart,
      ids.map((id) => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(id >>> 0);
        return b;
      }),
    );
    let xattrTable = Buffer.alloc(0);
    let xattrIdTableStart = INVALID;
    if (xattrSets.length > 0) {
      const xattrStart = tablesStart + idTable.length;
      const kv = new MetadataWriter();
      const idEntries: Buffer[] = [];
      for (const set of xattrSets) {
        const e = Buffer.alloc(16);
        e.writeBigUInt64LE(kv.ref(), 0);
        e.writeUInt32LE(set.readUInt32LE(0), 8);
        e.writeUInt32LE(set.length - 4, 12);
        kv.put(set.subarray(4));
        idEntries.push(e);
      }
      const kvBytes = kv.finish();
      const [ids2, headerAt] = lookupTable(xattrStart + kvBytes.length, idEntries, (h) => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64LE(BigInt(xattrStart), 0);
        b.writeUInt32LE(xattrSets.length, 8);
        return Buffer.concat([b, h]);
      });
      xattrTable = Buffer.concat([kvBytes, ids2]);
      xattrIdTableStart = BigInt(headerAt);
    }
    const tables = Buffer.concat([inodeTable, directoryTable, idTable, xattrTable]);
    const bytesUsed = inodeTableStart + tables.length;
    const pad = (4096 - (bytesUsed % 4096)) % 4096;
    await writeAll(out, Buffer.concat([tables, Buffer.alloc(pad)]), inodeTableStart);

    const sb = Buffer.alloc(96);
    sb.writeUInt32LE(0x73717368, 0);
    sb.writeUInt32LE(inodeCount, 4);
    sb.writeUInt32LE(0, 8);
    sb.writeUInt32LE(BLOCK_SIZE, 12);
    sb.writeUInt32LE(0, 16);
    sb.writeUInt16LE(GZIP_ID, 20);
    sb.writeUInt16LE(BLOCK_LOG, 22);
    sb.writeUInt16LE(0x0010 | (xattrSets.length === 0 ? 0x0200 : 0), 24); // no fragments
    sb.writeUInt16LE(ids.length, 26);
    sb.writeUInt16LE(4, 28);
    sb.writeUInt16LE(0, 30);
    sb.writeBigUInt64LE(root.ref, 32);
    sb.writeBigUInt64LE(BigInt(bytesUsed), 40);
    sb.writeBigUInt64LE(BigInt(idTableStart), 48);
    sb.writeBigUInt64LE(xattrIdTableStart, 56);
    sb.writeBigUInt64LE(BigInt(inodeTableStart), 64);
    sb.writeBigUInt64LE(BigInt(directoryTableStart), 72);
    // No fragments: the fragment table would start where the id table does.
    sb.writeBigUInt64LE(BigInt(tablesStart), 80);
    sb.writeBigUInt64LE(INVALID, 88);
    await writeAll(out, sb, 0);
    await out.sync();
    await out.close();
    const sha256 = await sha256File(outPath);
    return { sha256, bytes: bytesUsed + pad, blocks, copiedBytes };
  } catch (error) {
    await out.close().catch(() => undefined);
    throw error;
  }
}

/**
 * Entries in metadata blocks followed by the table of those blocks' absolute offsets (what
 * squashfs's id, xattr id and export tables look like); `wrap` may put a header before the
 * offsets. Returns the bytes and the absolute offset of the header (or of the offsets).
 */
function lookupTable(
  at: number,
  entries: Buffer[],
  wrap: (offsets: Buffer) => Buffer = (o) => o,
): [Buffer, number] {
  const meta = new MetadataWriter();
  for (const e of entries) meta.put(e);
  const bytes = meta.finish();
  const starts = meta.starts;
  const offsets = Buffer.alloc(8 * starts.length);
  starts.forEach((s, i) => offsets.writeBigUInt64LE(BigInt(at + s), 8 * i));
  return [Buffer.concat([bytes, wrap(offsets)]), at + bytes.length];
}

/** An xattr set as squashfs stores it, prefixed by its entry count (u32); null when empty. */
function encodeXattrs(xattrs: ReadonlyMap<string, Buffer>): Buffer | null {
  const parts: Buffer[] = [];
  let count = 0;
  for (const key of [...xattrs.keys()].sort(byBytes)) {
    const prefix = XATTR_PREFIXES.find(([p]) => key.startsWith(p));
    // Only user., trusted. and security. exist in squashfs (mksquashfs leaves the others out too).
    if (!prefix) continue;
    const name = Buffer.from(key.slice(prefix[0].length));
    const value = xattrs.get(key) as Buffer;
    const h = Buffer.alloc(4);
    h.writeUInt16LE(prefix[1], 0);
    h.writeUInt16LE(name.length, 2);
    const v = Buffer.alloc(4);
    v.writeUInt32LE(value.length, 0);
    parts.push(h, name, v, value);
    count++;
  }
  if (count === 0) return null;
  const c = Buffer.alloc(4);
  c.writeUInt32LE(count);
  return Buffer.concat([c, ...parts]);
}

/**
 * A data block as squashfs stores it: deflated at level 9 (in the thread pool) when that makes it
 * smaller, else raw. A block that surely would not shrink (incompressible.ts: already compressed
 * or random bytes) is stored raw without trying.
 */
export async function compressBlock(raw: Buffer): Promise<{ bytes: Buffer; word: number }> {
  if (looksIncompressible(raw)) return { bytes: raw, word: raw.length | UNCOMPRESSED_BLOCK };
  const packed = await deflateAsync(raw, { level: 9 });
  return packed.length < raw.length
    ? { bytes: packed, word: packed.length }
    : { bytes: raw, word: raw.length | UNCOMPRESSED_BLOCK };
}

async function readExactly(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await file.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw new FlotillaError('FLT_IO', 'a file ended before its recorded size');
    got += bytesRead;
  }
  return buf;
}

async function writeAll(file: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await file.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}
