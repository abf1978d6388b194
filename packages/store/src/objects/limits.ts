/** Limits that bound every tree, object and path the store accepts. All sizes in bytes. */
export interface TreeLimits {
  /** Entries in one directory object (default 65,536). */
  maxEntriesPerDir: number;
  /** Files, directories and symlinks in one tree, root excluded (default 1,000,000). */
  maxTotalEntries: number;
  /** Directory nesting below the root (default 64). */
  maxDepth: number;
  /** Size of one file (default 16 GiB). */
  maxFileSize: number;
  /** Sum of all file sizes in one tree (default 256 GiB). */
  maxTotalBytes: number;
  /** Chunks in one file object (default 262,144). */
  maxChunksPerFile: number;
  /** Size of one chunk (default 16 MiB, the chunker's largest possible maxSize). */
  maxChunkSize: number;
  /** Encoded size of one file or directory object (default 32 MiB). */
  maxObjectBytes: number;
  /** Allow setuid, setgid and sticky bits in modes (default false). */
  allowSpecialModes: boolean;
}

export const DEFAULT_TREE_LIMITS: Readonly<TreeLimits> = Object.freeze({
  maxEntriesPerDir: 65_536,
  maxTotalEntries: 1_000_000,
  maxDepth: 64,
  maxFileSize: 16 * 1024 ** 3,
  maxTotalBytes: 256 * 1024 ** 3,
  maxChunksPerFile: 262_144,
  maxChunkSize: 16 * 1024 ** 2,
  maxObjectBytes: 32 * 1024 ** 2,
  allowSpecialModes: false,
});

/** Longest entry name, in UTF-8 bytes (NAME_MAX on Linux). */
export const MAX_NAME_BYTES = 255;
/** Longest symlink target, in UTF-8 bytes (PATH_MAX - 1 on Linux). */
export const MAX_SYMLINK_TARGET_BYTES = 4095;

export function resolveLimits(limits: Partial<TreeLimits> = {}): TreeLimits {
  return { ...DEFAULT_TREE_LIMITS, ...limits };
}
