import type { BuildResult, ObjectSink } from '@flotilla/store';
import type { CachedLayer } from '../registry/types.js';
import type { ConversionBase, ImageIndex } from './reuse.js';

/** A layer to apply: a cached blob (see CachedLayer), bottom first. */
export type LayerSource = Pick<CachedLayer, 'digest' | 'path'> & Partial<Pick<CachedLayer, 'compression'>>;

export interface ConvertOptions {
  /** Directory receiving `<name>.sqfs` (written under a temporary name, renamed when complete). */
  outDir: string;
  /** File name of the squashfs in outDir. Default `image.sqfs`. */
  outName?: string;
  /** Scratch directory for the unpacked root file system (removed afterwards). Default: outDir. */
  workDir?: string;
  /** Allow character and block device nodes in layers (a platform's choice). Default false. */
  allowDevices?: boolean;
  /** Where the release tree's objects go (a store). Without it no tree is built. */
  sink?: ObjectSink;
  signal?: AbortSignal;
  onProgress?: (progress: ConvertProgress) => void;
  /** Largest unpacked image, bytes. Default 64 GiB. */
  maxUnpackedBytes?: number;
  /** Most entries in the unpacked image. Default 1 000 000. */
  maxEntries?: number;
  /** The mksquashfs compressor (`gzip`, `zstd`, `xz`, ...). Default `gzip`. */
  compressor?: string;
  /**
   * Who writes the squashfs: `flotilla` (the gateway's own writer, gzip only, able to copy an
   * earlier image's blocks) or `sqfstar`. Default: `flotilla` for gzip, `sqfstar` otherwise.
   */
  squashfsWriter?: 'flotilla' | 'sqfstar';
  /**
   * An earlier image to reuse (ConversionCache.findBase): its layers' entries and its files'
   * compressed blocks. The output is the same bytes as without it. The caller closes it.
   */
  base?: ConversionBase | null;
}

export type ConvertProgress =
  | { phase: 'layer'; index: number; count: number; digest: string }
  | { phase: 'squashfs' }
  | { phase: 'tree' };

export interface ConvertResult {
  /** Absolute path of the squashfs file. */
  squashfsPath: string;
  /** SHA-256 (hex) of the squashfs file. */
  squashfsSha256: string;
  squashfsBytes: number;
  /** The release tree (root object id and stats), or null when no sink was given. */
  tree: BuildResult | null;
  /**
   * Paths in the image the release tree cannot hold (device nodes, FIFOs, sockets); they are in
   * the squashfs. Owners and xattrs are in the squashfs only too (a release tree has none).
   */
  notInTree: string[];
  /** Entries in the image (files, directories, links, nodes), the root excluded. */
  entries: number;
  /** Sum of regular file sizes, bytes. */
  bytes: number;
  /** What the next conversion may reuse (ConversionCache.remember); null with sqfstar. */
  index: ImageIndex | null;
  /** What came from the base: its id, layers applied from its entries, bytes of blocks copied. */
  reused: { base: string | null; layers: number; copiedBytes: number };
}
