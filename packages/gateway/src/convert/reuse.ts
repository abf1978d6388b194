/**
 * The conversion cache: for each squashfs in the image cache, what its conversion learnt that the
 * next one can reuse (docs/gateway.md "Incremental conversion"):
 *
 * - the entries of each of its layers (tar headers, no contents), so a layer the next image shares
 *   is applied from them without decompressing the layer again;
 * - where each regular file's compressed blocks are in the squashfs, by origin (the layer entry
 *   that wrote the bytes, `<layer digest>#<entry index>`): layers are content-addressed, so a file
 *   of the same origin has the same bytes, and its blocks are copied instead of compressed.
 *
 * `<dir>/<id>.index.json` holds both, `<dir>/<id>.layers.json` just the layer digests (read to
 * choose a base), both written under a temporary name and renamed, the layers file last; `<id>`
 * is the squashfs's content id, and the entry goes when the image leaves the cache (expiry).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockLocation, BlockSource } from './sqfs-writer.js';
import { BLOCK_SIZE } from './sqfs-writer.js';
import type { TarEntry, TarType } from './tar.js';

const VERSION = 1;

/** A tar header as stored: name, type, mode, uid, gid, size, linkname, devmajor, devminor, xattrs. */
export type StoredEntry = [
  string,
  TarType,
  number,
  number,
  number,
  number,
  string,
  number,
  number,
  [string, string][],
];

export interface ImageIndex {
  v: number;
  blockSize: number;
  layers: { digest: string; entries: StoredEntry[] }[];
  /** Origin → [start, ...block words]. */
  blocks: Record<string, number[]>;
  /** `<origin>:<octal mode>` → release tree file object id, when the conversion built a tree. */
  trees?: Record<string, string>;
}

/** What a conversion may take from an earlier image. */
export interface ConversionBase {
  /** Content id of the earlier squashfs. */
  id: string;
  source: BlockSource;
  /** Entries of its layers, by digest. */
  layers: ReadonlyMap<string, TarEntry[]>;
  /** Its release tree's file object ids (see ImageIndex.trees); empty without a tree. */
  trees: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

export function storeEntry(e: TarEntry): StoredEntry {
  return [
    e.name,
    e.type,
    e.mode,
    e.uid,
    e.gid,
    e.size,
    e.linkname,
    e.devmajor,
    e.devminor,
    [...e.xattrs].map(([k, v]) => [k, v.toString('base64')]),
  ];
}

function loadEntry(s: StoredEntry): TarEntry {
  const [name, type, mode, uid, gid, size, linkname, devmajor, devminor, xattrs] = s;
  return {
    name,
    type,
    mode,
    uid,
    gid,
    size,
    linkname,
    devmajor,
    devminor,
    xattrs: new Map(xattrs.map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  };
}

export function makeIndex(
  layers: { digest: string; entries: StoredEntry[] }[],
  blocks: ReadonlyMap<string, BlockLocation>,
): ImageIndex {
  const out: Record<string, number[]> = {};
  for (const [origin, loc] of blocks) out[origin] = [loc.start, ...loc.words];
  return { v: VERSION, blockSize: BLOCK_SIZE, layers, blocks: out };
}

export class ConversionCache {
  /**
   * `dir`: the cache's directory; `imagePath(id)`: where the squashfs of content id `id` is
   * (the gateway's image cache).
   */
  constructor(
    readonly dir: string,
    private readonly imagePath: (id: string) => string,
  ) {}

  private indexPath(id: string): string {
    return join(this.dir, `${id}.index.json`);
  }

  private layersPath(id: string): string {
    return join(this.dir, `${id}.layers.json`);
  }

  /**
   * Records what the conversion of image `id` (already in the image cache) learnt. Written under
   * temporary names in `tmpDir` (same file system, removed with a killed job's work directory).
   */
  async remember(id: string, index: ImageIndex, tmpDir: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(id)) return;
    await mkdir(this.dir, { recursive: true });
    const token = randomBytes(6).toString('hex');
    const tmpIndex = join(tmpDir, `.index-${token}`);
    const tmpLayers = join(tmpDir, `.layers-${token}`);
    try {
      await writeFile(tmpIndex, JSON.stringify(index));
      await writeFile(tmpLayers, JSON.stringify(index.layers.map((l) => l.digest)));
      await rename(tmpIndex, this.indexPath(id));
      await rename(tmpLayers, this.layersPath(id));
    } finally {
      await rm(tmpIndex, { force: true });
      await rm(tmpLayers, { force: true });
    }
  }

  /** Removes image `id`'s entry (when the image leaves the cache). */
  async forget(id: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(id)) return;
    await rm(this.layersPath(id), { force: true });
    await rm(this.indexPath(id), { force: true });
  }

  /**
   * The cached image sharing the most layers with `digests` (none shared: null), its squashfs
   * opened (so an expiry removing it meanwhile does not matter). Unreadable or orphaned entries
   * are skipped (orphans removed): the conversion then compresses what it cannot copy.
   */
  async findBase(digests: readonly string[]): Promise<ConversionBase | null> {
    const wanted = new Set(digests);
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const candidates: { id: string; shared: number }[] = [];
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.layers\.json$/.exec(name);
      if (!m) continue;
      try {
        const layers = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as unknown;
        if (!Array.isArray(layers)) continue;
        const shared = layers.filter((d) => typeof d === 'string' && wanted.has(d)).length;
        if (shared > 0) candidates.push({ id: m[1] as string, shared });
      } catch {
        // being replaced or damaged: not a candidate
      }
    }
    candidates.sort((a, b) => b.shared - a.shared || (a.id < b.id ? -1 : 1));
    for (const { id } of candidates) {
      let file: FileHandle;
      try {
        file = await open(this.imagePath(id), 'r');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') await this.forget(id);
        continue;
      }
      try {
        const index = JSON.parse(await readFile(this.indexPath(id), 'utf8')) as ImageIndex;
        if (index.v !== VERSION || index.blockSize !== BLOCK_SIZE) throw new Error('other version');
        const size = (await file.stat()).size;
        const blocks = new Map<string, BlockLocation>();
        for (const [origin, [start, ...words]] of Object.entries(index.blocks)) {
          const end = (start as number) + words.reduce((s, w) => s + (w & 0xffffff), 0);
          if (end > size) throw new Error('index does not fit the file');
          blocks.set(origin, { start: start as number, words });
        }
        const layers = new Map<string, TarEntry[]>();
        for (const l of index.layers)
          if (wanted.has(l.digest)) layers.set(l.digest, l.entries.map(loadEntry));
        const trees = new Map(Object.entries(index.trees ?? {}));
        return { id, source: { file, blocks }, layers, trees, close: () => file.close() };
      } catch {
        await file.close();
      }
    }
    return null;
  }
}
