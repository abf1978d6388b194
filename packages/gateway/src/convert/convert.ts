import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { buildTree } from '@flotilla/store';
import { readLayer } from './layer-stream.js';
import { Rootfs, normalizeEntryPath } from './rootfs.js';
import { writeSquashfs } from './squashfs.js';
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
  try {
    await rootfs.init();
    for (const [index, layer] of layers.entries()) {
      progress({ phase: 'layer', index, count: layers.length, digest: layer.digest });
      // Paths this layer put in place: an opaque marker hides only what lower layers left.
      const created = new Set<string>();
      await readLayer(
        layer.path,
        layer.digest,
        async (entry, body) => {
          const path = normalizeEntryPath(entry.name, layer.digest);
          const whiteout = Rootfs.whiteoutOf(path);
          if (whiteout?.kind === 'opaque') await rootfs.clear(whiteout.target, created);
          else if (whiteout) await rootfs.remove(whiteout.target);
          else {
            await rootfs.apply(entry, body, layer.digest);
            created.add(path);
          }
        },
        options.signal,
      );
    }
    await applyModes(rootfs);

    progress({ phase: 'squashfs' });
    await writeSquashfs(rootfs, tmpOut, options.compressor ?? 'gzip', options.signal);
    const squashfsSha256 = await sha256File(tmpOut);
    const squashfsBytes = (await stat(tmpOut)).size;
    const squashfsPath = join(outDir, outName);
    let tree = null;
    if (options.sink) {
      progress({ phase: 'tree' });
      tree = await buildTree(rootfs.dir, { sink: options.sink, limits: { allowSpecialModes: true } });
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

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
