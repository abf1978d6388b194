/**
 * The seam between jobs and the registry client + converter: an importer pulls one image from a
 * location and writes its squashfs file into a work directory that the job owns.
 */
import type { ObjectSink } from '@flotilla/store';
import type { LocationConfig, PlatformConfig } from '../config/config.js';
import type { ConversionCache, ImageIndex } from '../convert/reuse.js';

export interface ImportRequest {
  location: LocationConfig;
  /** Repository in the location, e.g. `library/busybox`. */
  repository: string;
  tag: string;
  arch: string;
  platform: PlatformConfig;
  /** The job's own scratch directory (empty at start, removed afterwards). */
  workDir: string;
  /** Layer blob cache shared by all jobs (and workers on the same file system). */
  blobCacheDir: string;
  /** Earlier conversions' work, reused when the image shares layers with a cached one. */
  conversionCache?: ConversionCache;
  /** Aborted on the pull timeout or when the job moved to another worker. */
  signal: AbortSignal;
  /**
   * For a `fleet` platform: where the image's release tree goes (the server's object store); the
   * result's `treeRoot` names its root directory object.
   */
  sink?: ObjectSink;
  /** `phase` is pulling or converting; `fraction` 0..1 within it. */
  onProgress(phase: 'pulling' | 'converting', fraction: number): void;
}

export interface ImportResult {
  /** The squashfs file, inside `workDir`. */
  squashfsPath: string;
  manifestDigest: string;
  /** SHA-256 (hex) of the squashfs file, when the importer computed it while writing. */
  squashfsSha256?: string;
  /** The release tree's root object id, when a `sink` was given. */
  treeRoot?: string;
  /** What the next conversion may reuse, for the conversion cache once the file is cached. */
  index?: ImageIndex | null;
  /** Content id of the cached image whose work the conversion reused, if any. */
  reusedFrom?: string | null;
}

export interface ImageImporter {
  import(request: ImportRequest): Promise<ImportResult>;
}
