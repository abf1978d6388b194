/**
 * Metadata on the local filesystem: `<dir>/<repo>/<version>.<role>.json`, written to a temporary
 * file, fsynced and linked into place (no-clobber), so a crash leaves a version complete or absent.
 *
 * The store is the only writer of its directory (it lives in the server's data directory, which one
 * process holds locked; replicas on one PostgreSQL each have their own data directory and derive
 * their director metadata from the database, docs/architecture.md "Assignments"). So it keeps what
 * it learnt in memory instead of asking the file system on every request: per repository the
 * versions stored of each role (one directory listing when the repository is first used, then kept
 * up to date by `put` and `deleteBelow`), and the bytes of recently written or read versions (they
 * never change: a published version is immutable), both bounded.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { WeightedLru, writeFileAtomic } from '@flotilla/node-kit';
import { checkStoreKey, versionExists } from './metadata-store.js';
import type { MetadataStore, StoredRole } from './metadata-store.js';

const FILE_NAME = /^([1-9][0-9]{0,15})\.(root|targets|snapshot|timestamp|gateway)\.json$/;

/** The versions stored of each role of one repository, in ascending order. */
type Versions = Record<StoredRole, number[]>;

export interface FsMetadataStoreOptions {
  /** Repositories whose versions are kept in memory (default 100,000: a fleet's devices). */
  maxRepos?: number;
  /** Bytes of metadata kept in memory (default 32 MiB). */
  maxCachedBytes?: number;
}

/**
 * The stores opened in this process, by directory: `open` hands every user of one directory the same
 * instance, so that what one writes the others read (the versions and bytes are kept in memory).
 */
const openStores = new Map<string, WeakRef<FsMetadataStore>>();

export class FsMetadataStore implements MetadataStore {
  /** The one store of `dir` in this process (created on first use); prefer it to `new`. */
  static open(dir: string, opts: FsMetadataStoreOptions = {}): FsMetadataStore {
    const key = resolve(dir);
    const existing = openStores.get(key)?.deref();
    if (existing) return existing;
    const store = new FsMetadataStore(key, opts);
    openStores.set(key, new WeakRef(store));
    return store;
  }

  readonly #versions: WeightedLru<string, Versions>;
  readonly #bytes: WeightedLru<string, Buffer>;
  /** Listings under way, so that concurrent first uses of a repository read its directory once. */
  readonly #listing = new Map<string, Promise<Versions>>();
  /** Bumped by every change of a repository: a listing started before a change is not kept. */
  readonly #generation = new Map<string, number>();

  constructor(
    private readonly dir: string,
    opts: FsMetadataStoreOptions = {},
  ) {
    this.#versions = new WeightedLru({ weigh: () => 1, maxWeight: opts.maxRepos ?? 100_000 });
    this.#bytes = new WeightedLru({
      weigh: (b) => b.length + 64,
      maxWeight: opts.maxCachedBytes ?? 32 * 1024 * 1024,
      maxItemWeight: 1024 * 1024,
    });
  }

  async get(repo: string, role: StoredRole, version: number): Promise<Buffer | undefined> {
    checkStoreKey(repo, version);
    const key = bytesKey(repo, role, version);
    const cached = this.#bytes.get(key);
    if (cached !== undefined) return Buffer.from(cached);
    const known = this.#versions.peek(repo);
    if (known !== undefined && !known[role].includes(version)) return undefined;
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir, repo, `${version}.${role}.json`));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new FlotillaError('FLT_IO', `cannot read TUF metadata ${repo}/${version}.${role}.json`, {
        cause,
      });
    }
    // Unless it was deleted meanwhile (deleteBelow), the version stays what was just read.
    if (this.#versions.peek(repo)?.[role].includes(version) ?? true) this.#bytes.set(key, Buffer.from(bytes));
    return bytes;
  }

  async latestVersion(repo: string, role: StoredRole): Promise<number | undefined> {
    checkStoreKey(repo, 1);
    return (await this.#versionsOf(repo))[role].at(-1);
  }

  async put(repo: string, role: StoredRole, version: number, bytes: Uint8Array): Promise<void> {
    checkStoreKey(repo, version);
    const path = join(this.dir, repo, `${version}.${role}.json`);
    // A repository with a version stored has its directory: no mkdir (a file system call) then.
    const known = this.#versions.peek(repo);
    const hasDir = known !== undefined && Object.values(known).some((versions) => versions.length > 0);
    const write = (createDir: boolean) =>
      writeFileAtomic(path, bytes, { mode: 0o600, existing: 'keep', createDir });
    let created: 'written' | 'exists';
    try {
      created = await write(!hasDir).catch((e: unknown) => {
        // Removed behind the store's back: created again.
        if (hasDir && (e as NodeJS.ErrnoException).code === 'ENOENT') return write(true);
        throw e;
      });
    } catch (cause) {
      throw new FlotillaError('FLT_IO', `cannot write TUF metadata ${repo}/${version}.${role}.json`, {
        cause,
      });
    }
    if (created === 'exists') throw versionExists(repo, role, version);
    // After the write: a listing still under way is not kept, one made meanwhile learns the version.
    this.#changed(repo);
    const now = this.#versions.peek(repo);
    if (now !== undefined && !now[role].includes(version)) {
      now[role].push(version);
      now[role].sort((a, b) => a - b);
    }
    this.#bytes.set(bytesKey(repo, role, version), Buffer.from(bytes));
  }

  async deleteBelow(repo: string, role: StoredRole, version: number): Promise<void> {
    checkStoreKey(repo, 1);
    const dir = join(this.dir, repo);
    const below = (await this.#versionsOf(repo))[role].filter((v) => v < version);
    if (below.length === 0) return;
    const gone: number[] = [];
    try {
      for (const v of below) {
        this.#bytes.delete(bytesKey(repo, role, v));
        await unlink(join(dir, `${v}.${role}.json`)).catch((cause: NodeJS.ErrnoException) => {
          if (cause.code !== 'ENOENT')
            throw new FlotillaError('FLT_IO', `cannot delete ${repo}/${v}.${role}.json`, { cause });
        });
        gone.push(v);
      }
    } finally {
      // After the deletes (as after a write): whatever is kept forgets what is gone.
      this.#changed(repo);
      const now = this.#versions.peek(repo);
      if (now !== undefined) now[role] = now[role].filter((v) => !gone.includes(v));
    }
  }

  async listRepos(prefix: string): Promise<string[]> {
    const repos: string[] = [];
    for (const name of await this.#list(this.dir)) {
      if (name === 'director') {
        repos.push('director');
        for (const device of await this.#list(join(this.dir, 'director'))) {
          if (!FILE_NAME.test(device) && !device.startsWith('.')) repos.push(`director/${device}`);
        }
      } else if (name === 'image') {
        repos.push('image');
      }
    }
    return repos.filter((r) => r.startsWith(prefix)).sort();
  }

  /** The versions stored in `repo`: from memory, else from one listing of its directory. */
  #versionsOf(repo: string): Promise<Versions> {
    const known = this.#versions.get(repo);
    if (known !== undefined) return Promise.resolve(known);
    let listing = this.#listing.get(repo);
    if (listing === undefined) {
      const generation = this.#generation.get(repo) ?? 0;
      listing = this.#list(join(this.dir, repo))
        .then((names) => {
          const versions: Versions = { root: [], targets: [], snapshot: [], timestamp: [], gateway: [] };
          for (const name of names) {
            const m = FILE_NAME.exec(name);
            if (m) versions[m[2] as StoredRole].push(Number(m[1]));
          }
          for (const list of Object.values(versions)) list.sort((a, b) => a - b);
          // A put or delete while the directory was read may be missing from the listing: not kept.
          if ((this.#generation.get(repo) ?? 0) === generation) this.#versions.set(repo, versions);
          return versions;
        })
        .finally(() => {
          this.#listing.delete(repo);
          this.#generation.delete(repo);
        });
      this.#listing.set(repo, listing);
    }
    return listing;
  }

  #changed(repo: string): void {
    if (this.#listing.has(repo)) this.#generation.set(repo, (this.#generation.get(repo) ?? 0) + 1);
  }

  async #list(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new FlotillaError('FLT_IO', `cannot list ${dir}`, { cause });
    }
  }
}

function bytesKey(repo: string, role: StoredRole, version: number): string {
  return `${repo}\u0000${role}\u0000${version}`;
}
