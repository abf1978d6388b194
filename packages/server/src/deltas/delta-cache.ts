/**
 * The on-disk cache of computed delta records: `<dataDir>/deltas/<target[0:2]>/<target>-<base>`
 * holds `[4-byte magic "FLD1"][u8 kind][32-byte SHA-256 of the payload][payload]`. Entries are
 * written to a temp file beside their place and renamed into it, so a reader sees a whole entry or
 * none; the hash catches a torn or damaged one, which is then dropped and computed again. It is only
 * a cache: deleting the directory loses nothing but computation time.
 *
 * The entries last read or written are also kept in memory (within a byte budget), so the pairs a
 * fleet updating between two releases asks for again and again are answered without a file read
 * and hash each; `prune` drops them with their files.
 *
 * The files are capped in bytes (config `deltaCacheMaxBytes`): the cache learns what is on disk at
 * its first write (oldest modification first) and then deletes the entries used least recently
 * whenever a write takes it over the cap. An entry may also be kept in memory only (`onDisk: false`,
 * a delta that saves too little to be worth the disk).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeltaKind } from '@flotilla/store';
import type { Logger } from 'pino';
import { WeightedLru } from '@flotilla/node-kit';
import { DATA_DIR_MODE, DATA_FILE_MODE } from '../data-dir.js';

const MAGIC = Buffer.from('FLD1', 'latin1');
const HEADER_BYTES = MAGIC.length + 1 + 32;
const ENTRY_NAME = /^([0-9a-f]{64})-([0-9a-f]{64})$/;
const TEMP_MARK = '.tmp-';
/** Temp files older than this belong to no write in progress (a crash left them). */
const STALE_TEMP_MS = 60 * 60 * 1000;
/** Bytes of the entries kept in memory (payload and a fixed overhead each), and the largest kept. */
const DEFAULT_MEMORY_BYTES = 32 * 1024 * 1024;
const MEMORY_ENTRY_OVERHEAD = 256;
const MEMORY_ENTRY_SHARE = 8;
/** Uses remembered before the disk is indexed (at the first write after a start). */
const MAX_USED_EARLY = 100_000;

export interface CachedDelta {
  kind: DeltaKind;
  /** The zstd frame for kind `zstd`; empty for `none`. */
  payload: Buffer;
}

export interface PruneResult {
  removed: number;
  kept: number;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

export class DeltaCache {
  /** Recently used entries by `<target>-<base>`. */
  private readonly recent: WeightedLru<string, CachedDelta>;
  /** Entry name → bytes of its file, least recently used first; null until the first write. */
  private disk: Map<string, number> | null = null;
  private diskBytes = 0;
  private indexing: Promise<Map<string, number>> | null = null;
  /** Entries used before the disk was indexed, most recent last: recent once it is. */
  private readonly usedEarly = new Set<string>();

  /** `maxDiskBytes`: most bytes of entry files (default unbounded; 0 keeps nothing on disk). */
  constructor(
    readonly root: string,
    private readonly log: Logger,
    memoryBytes = DEFAULT_MEMORY_BYTES,
    private readonly maxDiskBytes = Number.POSITIVE_INFINITY,
  ) {
    this.recent = new WeightedLru({
      weigh: (entry) => entry.payload.length + MEMORY_ENTRY_OVERHEAD,
      maxWeight: memoryBytes,
      maxItemWeight: memoryBytes / MEMORY_ENTRY_SHARE,
    });
  }

  /** The cache under `<dataDir>/deltas`, its files within `maxDiskBytes`. */
  static under(dataDir: string, log: Logger, maxDiskBytes?: number): DeltaCache {
    return new DeltaCache(join(dataDir, 'deltas'), log, DEFAULT_MEMORY_BYTES, maxDiskBytes);
  }

  /** Entry files and their bytes as the cache counts them (null before the first write). */
  diskUsage(): { entries: number; bytes: number } | null {
    return this.disk && { entries: this.disk.size, bytes: this.diskBytes };
  }

  pathOf(target: string, base: string): string {
    return join(this.root, target.slice(0, 2), `${target}-${base}`);
  }

  /** The cached record, or undefined (absent, or damaged: then it is removed). */
  async get(target: string, base: string): Promise<CachedDelta | undefined> {
    const name = `${target}-${base}`;
    const kept = this.recent.get(name);
    if (kept) {
      this.touch(name);
      return kept;
    }
    const path = this.pathOf(target, base);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw error;
    }
    const entry = parseEntry(bytes);
    if (entry) {
      this.recent.set(name, entry);
      this.touch(name);
      return entry;
    }
    this.log.warn({ path }, 'damaged delta cache entry removed; the delta is computed again');
    await unlink(path).catch(() => undefined);
    this.forgetFile(name);
    return undefined;
  }

  /**
   * Stores a record: in memory, and unless `onDisk` is false (or the cap is 0) atomically on disk
   * (temp file in the same directory, then rename), deleting the least recently used entry files
   * beyond the cap.
   */
  async put(
    target: string,
    base: string,
    entry: CachedDelta,
    options: { onDisk?: boolean } = {},
  ): Promise<void> {
    const name = `${target}-${base}`;
    const fileBytes = HEADER_BYTES + entry.payload.length;
    if (options.onDisk === false || fileBytes > this.maxDiskBytes) {
      this.recent.set(name, entry);
      return;
    }
    const disk = await this.index();
    const path = this.pathOf(target, base);
    const temp = `${path}${TEMP_MARK}${randomBytes(6).toString('hex')}`;
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header[MAGIC.length] = entry.kind;
    createHash('sha256')
      .update(entry.payload)
      .digest()
      .copy(header, MAGIC.length + 1);
    await mkdir(join(this.root, target.slice(0, 2)), { recursive: true, mode: DATA_DIR_MODE });
    try {
      await writeFile(temp, Buffer.concat([header, entry.payload]), { mode: DATA_FILE_MODE });
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    this.recent.set(name, entry);
    this.forgetFile(name);
    disk.set(name, fileBytes);
    this.diskBytes += fileBytes;
    await this.evict();
  }

  /** Deletes the least recently used entry files until the cache is within its cap. */
  private async evict(): Promise<void> {
    const disk = this.disk;
    if (!disk) return;
    for (const [name, bytes] of disk) {
      if (this.diskBytes <= this.maxDiskBytes) return;
      disk.delete(name);
      this.diskBytes -= bytes;
      this.recent.delete(name);
      const m = ENTRY_NAME.exec(name);
      if (m) await rm(this.pathOf(m[1]!, m[2]!), { force: true });
    }
  }

  /** An entry file was used: now the most recently used. */
  private touch(name: string): void {
    if (!this.disk) {
      this.usedEarly.delete(name);
      if (this.usedEarly.size < MAX_USED_EARLY) this.usedEarly.add(name);
      return;
    }
    const bytes = this.disk.get(name);
    if (bytes === undefined) return;
    this.disk.delete(name);
    this.disk.set(name, bytes);
  }

  private forgetFile(name: string): void {
    const bytes = this.disk?.get(name);
    if (bytes === undefined) return;
    this.disk!.delete(name);
    this.diskBytes -= bytes;
  }

  /** What is on disk (entries left by earlier runs oldest first), learnt once. */
  private index(): Promise<Map<string, number>> {
    this.indexing ??= (async () => {
      const found: { name: string; bytes: number; at: number }[] = [];
      for (const dir of await this.list(this.root))
        for (const name of await this.list(join(this.root, dir))) {
          if (!ENTRY_NAME.test(name)) continue;
          const info = await stat(join(this.root, dir, name)).catch(() => undefined);
          if (info?.isFile()) found.push({ name, bytes: info.size, at: info.mtimeMs });
        }
      found.sort((a, b) => a.at - b.at);
      const disk = new Map<string, number>();
      let total = 0;
      for (const f of found) {
        disk.set(f.name, f.bytes);
        total += f.bytes;
      }
      for (const name of this.usedEarly) {
        const bytes = disk.get(name);
        if (bytes === undefined) continue;
        disk.delete(name);
        disk.set(name, bytes);
      }
      this.usedEarly.clear();
      this.disk = disk;
      this.diskBytes = total;
      return disk;
    })().catch((error: unknown) => {
      this.indexing = null;
      throw error;
    });
    return this.indexing;
  }

  /**
   * Removes every entry whose target or base is gone (`gone` names objects just deleted;
   * `exists` is asked about the others, so entries left by an earlier, interrupted sweep go too)
   * and temp files a crash left behind.
   */
  async prune(gone: ReadonlySet<string>, exists: (id: string) => Promise<boolean>): Promise<PruneResult> {
    const result: PruneResult = { removed: 0, kept: 0 };
    const known = new Map<string, boolean>();
    const present = async (id: string): Promise<boolean> => {
      if (gone.has(id)) return false;
      let answer = known.get(id);
      if (answer === undefined) {
        answer = await exists(id);
        known.set(id, answer);
      }
      return answer;
    };
    for (const name of [...this.recent.keys()]) {
      const [target, base] = name.split('-') as [string, string];
      if (!(await present(target)) || !(await present(base))) this.recent.delete(name);
    }
    const staleBefore = Date.now() - STALE_TEMP_MS;
    for (const dir of await this.list(this.root)) {
      const dirPath = join(this.root, dir);
      for (const name of await this.list(dirPath)) {
        const path = join(dirPath, name);
        if (name.includes(TEMP_MARK)) {
          const info = await stat(path).catch(() => undefined);
          if (info && info.mtimeMs < staleBefore) await rm(path, { force: true });
          continue;
        }
        const m = ENTRY_NAME.exec(name);
        if (m && (await present(m[1]!)) && (await present(m[2]!))) {
          result.kept += 1;
          continue;
        }
        this.recent.delete(name);
        this.forgetFile(name);
        await rm(path, { force: true });
        result.removed += 1;
      }
    }
    return result;
  }

  private async list(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch (error) {
      if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return [];
      throw error;
    }
  }
}

function parseEntry(bytes: Buffer): CachedDelta | undefined {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const kind = bytes[MAGIC.length];
  if (kind !== DeltaKind.none && kind !== DeltaKind.zstd) return undefined;
  const payload = bytes.subarray(HEADER_BYTES);
  if (kind === DeltaKind.none && payload.length > 0) return undefined;
  const hash = createHash('sha256').update(payload).digest();
  if (!hash.equals(bytes.subarray(MAGIC.length + 1, HEADER_BYTES))) return undefined;
  return { kind, payload };
}
