import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, link, mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { buildTree } from '@flotilla/store';
import { readLayer } from './layer-stream.js';
import { makeIndex, storeEntry } from './reuse.js';
import type { ConversionBase, ImageIndex, StoredEntry } from './reuse.js';
import { Rootfs, normalizeEntryPath } from './rootfs.js';
import type { FileContent, Node } from './rootfs.js';
import { BLOCK_SIZE, writeSquashfsImage } from './sqfs-writer.js';
import { writeSquashfs } from './squashfs.js';
import type { TarEntry } from './tar.js';
import type { ConvertOptions, ConvertResult, LayerSource } from './types.js';

/**
 * Applies `layers` (bottom first) into one root file system and writes it as a reproducible
 * squashfs file and, when `options.sink` is given, as a Flotilla release tree. Each layer is read
 * once, in order: a whiteout (`.wh.<name>`) removes its path, an opaque marker (`.wh..wh..opq`)
 * removes what lower layers left in its directory (OCI image layer spec, "Whiteouts"), every other
 * entry is applied. A hostile layer (a path or link escaping the root, a device
 * node where not allowed) is refused with FLT_LAYER_UNSAFE before anything is published.
 */
export async function convertImage(layers: LayerSource[], options: ConvertOptions): Promise<ConvertResult> {
  const outDir = resolve(options.outDir);
  const outName = options.outName ?? 'image.sqfs';
  if (outName.includes('/') || outName.startsWith('.')) {
    throw new FlotillaError('FLT_BAD_REQUEST', `squashfs file name "${outName}" must be a plain name`);
  }
  const work = join(resolve(options.workDir ?? outDir), `.convert-${randomBytes(6).toString('hex')}`);
  await mkdir(outDir, { recursive: true });
  await mkdir(work, { recursive: true, mode: 0o700 });
  const rootfs = new Rootfs(join(work, 'rootfs'), {
    maxUnpackedBytes: options.maxUnpackedBytes ?? 64 * 1024 ** 3,
    maxEntries: options.maxEntries ?? 1_000_000,
    allowDevices: options.allowDevices ?? false,
  });
  const progress = options.onProgress ?? (() => undefined);
  const tmpOut = join(outDir, `.${outName}.${randomBytes(6).toString('hex')}.tmp`);
  const writer =
    options.squashfsWriter ?? ((options.compressor ?? 'gzip') === 'gzip' ? 'flotilla' : 'sqfstar');
  const base = writer === 'flotilla' ? (options.base ?? null) : null;
  // A layer the base image has is applied from its recorded entries: no decompression, no file
  // written; the bytes come from the base's blocks (and, for the release tree, its file ids).
  const fromBase = base !== null;
  let reusedLayers = 0;
  try {
    await rootfs.init();
    const layerEntries: { digest: string; entries: StoredEntry[] }[] = [];
    for (const [index, layer] of layers.entries()) {
      progress({ phase: 'layer', index, count: layers.length, digest: layer.digest });
      // Paths this layer put in place: an opaque marker hides only what lower layers left.
      const created = new Set<string>();
      const handle = async (
        entry: TarEntry,
        body: AsyncIterable<Buffer> | null,
        i: number,
      ): Promise<void> => {
        const path = normalizeEntryPath(entry.name, layer.digest);
        const whiteout = Rootfs.whiteoutOf(path);
        if (whiteout?.kind === 'opaque') await rootfs.clear(whiteout.target, created);
        else if (whiteout) await rootfs.remove(whiteout.target);
        else {
          await rootfs.apply(entry, body, layer.digest, `${layer.digest}#${i}`);
          created.add(path);
        }
      };
      const known = fromBase ? base.layers.get(layer.digest) : undefined;
      if (known) {
        reusedLayers++;
        for (const [i, entry] of known.entries()) {
          if (options.signal?.aborted)
            throw new FlotillaError('FLT_UNAVAILABLE', 'the conversion was cancelled');
          await handle(entry, null, i);
        }
        layerEntries.push({ digest: layer.digest, entries: known.map(storeEntry) });
        continue;
      }
      const entries: StoredEntry[] = [];
      await readLayer(
        layer.path,
        layer.digest,
        async (entry, body) => {
          entries.push(storeEntry(entry));
          await handle(entry, body, entries.length - 1);
        },
        options.signal,
      );
      layerEntries.push({ digest: layer.digest, entries });
    }
    const sink = options.sink;
    if (fromBase) {
      const usable = new Set<string>();
      if (sink) for (const [key, id] of base.trees) if (await sink.has(id)) usable.add(key);
      await extractMissing(
        rootfs,
        layers,
        base,
        join(work, 'extra'),
        usable,
        sink !== undefined,
        options.signal,
      );
    }
    if (sink) await applyModes(rootfs);

    progress({ phase: 'squashfs' });
    let squashfsSha256: string;
    let index: ImageIndex | null = null;
    let copiedBytes = 0;
    if (writer === 'flotilla') {
      const written = await writeSquashfsImage(
        rootfs.nodes,
        tmpOut,
        (content, path) => content.extraPath ?? rootfs.diskPath(path),
        base?.source ?? null,
        options.signal,
      );
      squashfsSha256 = written.sha256;
      copiedBytes = written.copiedBytes;
      index = makeIndex(layerEntries, written.blocks);
    } else {
      await writeSquashfs(rootfs, tmpOut, options.compressor ?? 'gzip', options.signal);
      squashfsSha256 = await sha256File(tmpOut);
    }
    const squashfsBytes = (await stat(tmpOut)).size;
    const squashfsPath = join(outDir, outName);
    let tree = null;
    if (options.sink) {
      progress({ phase: 'tree' });
      const trees = new Map<string, string>();
      tree = await buildTree(rootfs.dir, {
        sink: options.sink,
        limits: { allowSpecialModes: true },
        knownFile: (path, mode) => {
          const origin = rootfs.nodes.get(path)?.content?.origin;
          return origin === undefined ? undefined : base?.trees.get(treeKey(origin, mode));
        },
        onFile: (path, mode, id) => {
          const origin = rootfs.nodes.get(path)?.content?.origin;
          if (origin !== undefined) trees.set(treeKey(origin, mode), id);
        },
      });
      if (index) index.trees = Object.fromEntries(trees);
    }
    await rename(tmpOut, squashfsPath);
    let bytes = 0;
    const notInTree: string[] = [];
    for (const [path, node] of rootfs.nodes) {
      if (node.type === 'file') bytes += node.size ?? 0;
      if (node.type === 'char' || node.type === 'block' || node.type === 'fifo') notInTree.push(`/${path}`);
    }
    return {
      squashfsPath,
      squashfsSha256,
      squashfsBytes,
      tree,
      notInTree: notInTree.sort(),
      entries: rootfs.nodes.size - 1,
      bytes,
      index,
      reused: { base: base?.id ?? null, layers: reusedLayers, copiedBytes },
    };
  } finally {
    await rm(tmpOut, { force: true });
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Gives the unpacked files and directories their image modes (deepest first, so a read-only
 * directory does not block its children), for the release tree. Directories stay readable and
 * searchable by their owner so the tree can be read.
 */
async function applyModes(rootfs: Rootfs): Promise<void> {
  const paths = [...rootfs.nodes.keys()].sort((a, b) => b.length - a.length);
  for (const path of paths) {
    const node = rootfs.nodes.get(path);
    if (!node) continue;
    if (node.type === 'file') await chmod(rootfs.diskPath(path), node.mode);
    else if (node.type === 'dir') await chmod(rootfs.diskPath(path), node.mode | 0o700);
  }
}

/**
 * Files applied from the base's entries need their bytes when the base's squashfs does not hold
 * them (a lower layer's file that the base image had replaced or hidden) or, with a release tree
 * to build (`tree`), when the base's tree has no usable file object for them (`usable`: keys of
 * objects the sink has): those are read from their layers into `dir` (and linked into the tree).
 * With a tree, the others get an empty placeholder that buildTree does not read (knownFile).
 */
async function extractMissing(
  rootfs: Rootfs,
  layers: LayerSource[],
  base: ConversionBase,
  dir: string,
  usable: ReadonlySet<string>,
  tree: boolean,
  signal?: AbortSignal,
): Promise<void> {
  const pathsOf = new Map<FileContent, string[]>();
  for (const [path, node] of rootfs.nodes) {
    const c = node.content;
    if (node.type !== 'file' || !c || c.onDisk) continue;
    const list = pathsOf.get(c) ?? [];
    list.push(path);
    pathsOf.set(c, list);
  }
  const wanted = new Map<string, FileContent[]>();
  for (const [c, paths] of pathsOf) {
    const loc = base.source.blocks.get(c.origin);
    const inSquashfs = loc !== undefined && loc.words.length === Math.ceil(c.size / BLOCK_SIZE);
    const inTree =
      !tree || paths.every((p) => usable.has(treeKey(c.origin, (rootfs.nodes.get(p) as Node).mode)));
    if (inSquashfs && inTree) continue;
    const list = wanted.get(c.origin) ?? [];
    list.push(c);
    wanted.set(c.origin, list);
  }
  if (wanted.size > 0) await mkdir(dir, { recursive: true });
  let n = 0;
  const done = new Set<string>();
  for (const layer of layers) {
    if (wanted.size === 0 || done.has(layer.digest)) continue;
    done.add(layer.digest);
    if (![...wanted.keys()].some((o) => o.startsWith(`${layer.digest}#`))) continue;
    let i = 0;
    await readLayer(
      layer.path,
      layer.digest,
      async (_entry, body) => {
        const contents = wanted.get(`${layer.digest}#${i++}`);
        if (!contents) return;
        const path = join(dir, String(n++));
        const fh = await open(path, 'wx', 0o600);
        try {
          for await (const chunk of body) await fh.write(chunk);
        } finally {
          await fh.close();
        }
        if ((await stat(path)).size !== (contents[0] as FileContent).size)
          throw new FlotillaError('FLT_LAYER_INVALID', `layer ${layer.digest}: an entry changed size`);
        for (const c of contents) c.extraPath = path;
      },
      signal,
    );
  }
  if (!tree) return;
  for (const [c, paths] of pathsOf) {
    for (const p of paths) {
      if (c.extraPath !== undefined) await link(c.extraPath, rootfs.diskPath(p));
      else await writeFile(rootfs.diskPath(p), '', { flag: 'wx', mode: 0o600 });
    }
  }
}

/** Key of a release tree file object in the conversion cache: the same bytes with the same mode. */
function treeKey(origin: string, mode: number): string {
  return `${origin}:${mode.toString(8)}`;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
