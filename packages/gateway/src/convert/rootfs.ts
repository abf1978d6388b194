import { open, link, mkdir, rm, symlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { TarEntry } from './tar.js';

/**
 * A regular file's content, shared by the paths hard-linked to it (one inode in the squashfs).
 * `origin` names the layer entry that wrote the bytes (`<layer digest>#<entry index>`): the same
 * origin is the same bytes in any image, which is what lets a conversion reuse earlier work.
 */
export interface FileContent {
  origin: string;
  size: number;
  /** The bytes are on disk under the paths of this content (else in an earlier image, or extraPath). */
  onDisk: boolean;
  /** Where the bytes were extracted when they are needed and not on disk under a path. */
  extraPath?: string;
}

/** One path of the unpacked image with what the squashfs keeps of it. */
export interface Node {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  /** Extended attributes from the layer's PAX records (`SCHILY.xattr.<name>`), values as bytes. */
  xattrs: Map<string, Buffer>;
  /** Symlink target as written in the layer. */
  target?: string;
  devmajor?: number;
  devminor?: number;
  size?: number;
  content?: FileContent;
}

export interface RootfsLimits {
  maxUnpackedBytes: number;
  maxEntries: number;
  allowDevices: boolean;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

function unsafe(digest: string, path: string, why: string): FlotillaError {
  return new FlotillaError('FLT_LAYER_UNSAFE', `layer ${digest} is refused: ${path}: ${why}`, {
    details: { digest, path },
  });
}

/**
 * A layer path as `a/b/c` (no leading `./` or `/`, no trailing `/`); `''` is the root. `..`
 * anywhere is refused (a path escaping the root), as are NUL bytes.
 */
export function normalizeEntryPath(name: string, digest: string): string {
  if (name.includes('\0')) throw unsafe(digest, JSON.stringify(name), 'NUL in the path');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe(digest, name, 'the path climbs out of the root with ".."');
  return parts.join('/');
}

/**
 * The target of a symlink at `path`, rewritten relative to the link's directory, for the release
 * tree (which holds relative links only). An absolute target resolves inside the image's root (a
 * container sees it there); a relative one that climbs above the root is refused.
 */
export function relativeTarget(path: string, target: string, digest: string): string {
  if (target.length === 0) throw unsafe(digest, path, 'empty symlink target');
  if (target.includes('\0')) throw unsafe(digest, path, 'NUL in the symlink target');
  const dir = posix.dirname(`/${path}`);
  let resolved: string;
  if (target.startsWith('/')) {
    resolved = posix.normalize(target);
  } else {
    // Textual resolution, counting how far the target climbs from the link's directory.
    const stack = dir.split('/').filter((p) => p.length > 0);
    for (const part of target.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (stack.length === 0) throw unsafe(digest, path, `symlink target "${target}" escapes the root`);
        stack.pop();
      } else stack.push(part);
    }
    resolved = `/${stack.join('/')}`;
  }
  const rel = posix.relative(dir, resolved);
  return rel === '' ? '.' : rel;
}

/**
 * The image's root file system while layers are applied: file contents, directories, symlinks
 * (relative targets) and hard links on disk under `dir`; owners, modes, xattrs, original link
 * targets and device nodes in `nodes` (the disk copy never needs root to be right).
 */
export class Rootfs {
  readonly nodes = new Map<string, Node>();
  bytes = 0;

  constructor(
    readonly dir: string,
    private readonly limits: RootfsLimits,
  ) {
    this.nodes.set('', { type: 'dir', mode: 0o755, uid: 0, gid: 0, xattrs: new Map() });
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  diskPath(path: string): string {
    return path === '' ? this.dir : join(this.dir, path);
  }

  /** Removes `path` and everything below it, on disk and in the index. */
  async remove(path: string): Promise<void> {
    const node = this.nodes.get(path);
    if (!node) return;
    if (node.type === 'dir') {
      const prefix = `${path}/`;
      for (const key of [...this.nodes.keys()]) if (key.startsWith(prefix)) this.nodes.delete(key);
    }
    if (path !== '') this.nodes.delete(path);
    if (path === '' || node.type === 'file' || node.type === 'dir' || node.type === 'symlink') {
      if (path === '') return;
      await rm(this.diskPath(path), { recursive: true, force: true });
    }
  }

  /**
   * Hides everything below a directory that the current layer did not put there (an opaque
   * directory: OCI image spec "Opaque Whiteout"; Docker's applier does the same walk).
   */
  async clear(path: string, keep: ReadonlySet<string>): Promise<void> {
    const node = this.nodes.get(path);
    if (!node || node.type !== 'dir') return;
    const prefix = path === '' ? '' : `${path}/`;
    const victims = [...this.nodes.keys()]
      .filter((k) => k !== '' && k.startsWith(prefix) && !keep.has(k))
      .sort((a, b) => a.length - b.length);
    // Top-down: removing a directory removes what is below it, kept or not.
    for (const victim of victims) if (this.nodes.has(victim)) await this.remove(victim);
  }

  /** What a whiteout entry hides, or null for an ordinary entry. */
  static whiteoutOf(path: string): { kind: 'opaque' | 'whiteout'; target: string } | null {
    const base = posix.basename(path);
    if (!base.startsWith(WHITEOUT)) return null;
    const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
    if (base === OPAQUE) return { kind: 'opaque', target: dir };
    const name = base.slice(WHITEOUT.length);
    if (name === '' || name === '.' || name === '..') return null;
    return { kind: 'whiteout', target: dir === '' ? name : `${dir}/${name}` };
  }

  /** Makes sure every parent of `path` is a directory (created 0755 root:root when missing). */
  private async parents(path: string, digest: string): Promise<void> {
    const parts = path.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur === '' ? (parts[i] as string) : `${cur}/${parts[i] as string}`;
      const node = this.nodes.get(cur);
      if (node === undefined) {
        this.count();
        this.nodes.set(cur, { type: 'dir', mode: 0o755, uid: 0, gid: 0, xattrs: new Map() });
        await mkdir(this.diskPath(cur), { mode: 0o755 });
      } else if (node.type !== 'dir') {
        throw unsafe(
          digest,
          path,
          `its parent ${cur} is a ${node.type}, not a directory (a path through a link is refused)`,
        );
      }
    }
  }

  private count(): void {
    if (this.nodes.size >= this.limits.maxEntries) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `the image has more than ${this.limits.maxEntries} entries`,
      );
    }
  }

  /**
   * Applies one non-whiteout entry of a layer. `origin` names the entry (see FileContent); a null
   * `body` records a file without writing its bytes (they are taken from an earlier image).
   */
  async apply(
    header: TarEntry,
    body: AsyncIterable<Buffer> | null,
    digest: string,
    origin: string,
  ): Promise<void> {
    const path = normalizeEntryPath(header.name, digest);
    const meta = {
      mode: header.mode & 0o7777,
      uid: header.uid,
      gid: header.gid,
      xattrs: header.xattrs,
    };
    if (path === '') {
      if (header.type === 'dir') this.nodes.set('', { type: 'dir', ...meta });
      return;
    }
    await this.parents(path, digest);
    const existing = this.nodes.get(path);
    if (existing && !(existing.type === 'dir' && header.type === 'dir')) await this.remove(path);
    if (!existing) this.count();
    const disk = this.diskPath(path);
    switch (header.type) {
      case 'dir':
        if (!existing || existing.type !== 'dir') await mkdir(disk, { mode: 0o755 });
        this.nodes.set(path, { type: 'dir', ...meta });
        return;
      case 'file': {
        if (body === null) {
          this.bytes += header.size;
          if (this.bytes > this.limits.maxUnpackedBytes) {
            throw new FlotillaError(
              'FLT_LIMIT_EXCEEDED',
              `the unpacked image is larger than ${this.limits.maxUnpackedBytes} bytes`,
            );
          }
          const content = { origin, size: header.size, onDisk: false };
          this.nodes.set(path, { type: 'file', ...meta, size: header.size, content });
          return;
        }
        const fh = await open(disk, 'wx', 0o600);
        let size = 0;
        try {
          for await (const chunk of body) {
            size += chunk.length;
            this.bytes += chunk.length;
            if (this.bytes > this.limits.maxUnpackedBytes) {
              throw new FlotillaError(
                'FLT_LIMIT_EXCEEDED',
                `the unpacked image is larger than ${this.limits.maxUnpackedBytes} bytes`,
              );
            }
            await fh.write(chunk);
          }
        } finally {
          await fh.close();
        }
        this.nodes.set(path, { type: 'file', ...meta, size, content: { origin, size, onDisk: true } });
        return;
      }
      case 'symlink': {
        const target = header.linkname;
        await symlink(relativeTarget(path, target, digest), disk);
        this.nodes.set(path, { type: 'symlink', ...meta, mode: 0o777, target });
        return;
      }
      case 'link': {
        const to = normalizeEntryPath(header.linkname, digest);
        const other = this.nodes.get(to);
        if (!other || other.type !== 'file') {
          throw new FlotillaError(
            'FLT_LAYER_INVALID',
            `layer ${digest}: hard link ${path} points at ${to}, which is not a file in the image`,
            {
              details: { digest, path, target: to },
            },
          );
        }
        if (other.content?.onDisk) await link(this.diskPath(to), disk);
        this.nodes.set(path, { ...other, xattrs: new Map(other.xattrs) });
        return;
      }
      case 'char':
      case 'block':
        if (!this.limits.allowDevices)
          throw unsafe(digest, path, 'device nodes are not allowed on this platform');
        this.nodes.set(path, {
          type: header.type,
          ...meta,
          devmajor: header.devmajor,
          devminor: header.devminor,
        });
        return;
      case 'fifo':
        this.nodes.set(path, { type: 'fifo', ...meta });
        return;
      default:
        throw new FlotillaError(
          'FLT_LAYER_INVALID',
          `layer ${digest}: ${path} has tar type ${String(header.type)}, which is not supported`,
          {
            details: { digest, path, type: header.type },
          },
        );
    }
  }
}
