/**
 * The devices' director metadata (`director/<deviceId>`) in one SQLite file of the server's data
 * directory (`tuf/director.sqlite`), instead of three files per device and re-sign: an assignment
 * to 10,000 devices wrote 30,000 files, each fsynced with its directory, which cost the server more
 * CPU (mostly in the kernel) than everything else it did per device (bench/README.md "fleet").
 *
 * Each `put` is one INSERT (WAL, no fsync at commit); a timestamp's then waits for an fdatasync of
 * the WAL file that started after it, shared by the re-signs made meanwhile (group commit). A
 * device's puts are made in order (targets, then the snapshot naming it, then the timestamp naming
 * that), and after a power cut SQLite replays a prefix of the WAL's commits: so a timestamp is never
 * durable before what it names, a put of a timestamp resolves only once it is durable, and the
 * versions a device can reach from a served timestamp are never lost and re-issued with other
 * content after a crash or a power cut. Like the file store, it is local to this server process (its data directory is locked;
 * replicas on one PostgreSQL derive their director metadata from the database).
 *
 * Metadata written by earlier versions as files (`tuf/director/<deviceId>/`) is moved in when the
 * store opens (`importFrom`).
 */
import { chmodSync, closeSync, fdatasync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { FlotillaError } from '@flotilla/protocol';
import { DATA_DIR_MODE, DATA_FILE_MODE } from '../data-dir.js';
import { checkStoreKey, versionExists } from './metadata-store.js';
import type { MetadataStore, StoredRole } from './metadata-store.js';

const FILE_NAME = /^([1-9][0-9]{0,15})\.(root|targets|snapshot|timestamp|gateway)\.json$/;
const DEVICE_REPO = /^director\/[A-Za-z0-9_-]{1,128}$/;

const openStores = new Map<string, WeakRef<SqliteMetadataStore>>();
const closeOnCollect = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
});

function tighten(file: string): void {
  const info = lstatSync(file, { throwIfNoEntry: false });
  if (info?.isFile() === true && (info.mode & 0o077) !== 0) chmodSync(file, info.mode & 0o700);
}

function ioError(message: string, cause: unknown): FlotillaError {
  return new FlotillaError('FLT_IO', message, { cause });
}

export interface SqliteMetadataStoreOptions {
  /** fdatasync(2) of the WAL (node:fs's; tests observe and delay it). */
  sync?: (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void;
}

export class SqliteMetadataStore implements MetadataStore {
  /** The one store of `path` in this process (opened on first use). */
  static open(path: string): SqliteMetadataStore {
    const key = resolve(path);
    const existing = openStores.get(key)?.deref();
    if (existing) return existing;
    const store = new SqliteMetadataStore(key);
    openStores.set(key, new WeakRef(store));
    return store;
  }

  readonly #db: SqliteDatabase.Database;
  readonly #walFd: number;
  readonly #insert: SqliteDatabase.Statement<[string, string, number, Buffer]>;
  readonly #select: SqliteDatabase.Statement<[string, string, number]>;
  readonly #latest: SqliteDatabase.Statement<[string, string]>;
  readonly #delete: SqliteDatabase.Statement<[string, string, number]>;
  readonly #repos: SqliteDatabase.Statement<[]>;
  /** The fdatasync under way, and the one queued behind it (for the writes made meanwhile). */
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  readonly #sync: NonNullable<SqliteMetadataStoreOptions['sync']>;

  /** Prefer `open` (one instance per file in a process). */
  constructor(
    readonly path: string,
    opts: SqliteMetadataStoreOptions = {},
  ) {
    this.#sync = opts.sync ?? fdatasync;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: DATA_DIR_MODE });
      // Created 0600 before SQLite opens it: its -wal and -shm files get the database file's mode.
      closeSync(openSync(path, 'a', DATA_FILE_MODE));
      for (const file of [path, `${path}-wal`, `${path}-shm`]) tighten(file);
      this.#db = new SqliteDatabase(path);
      this.#db.pragma('journal_mode = WAL');
      // Durability comes from the fdatasync of the WAL each put waits for (group commit).
      this.#db.pragma('synchronous = NORMAL');
      this.#db.exec(
        `create table if not exists metadata (
           repo text not null, role text not null, version integer not null, bytes blob not null,
           primary key (repo, role, version)
         ) without rowid`,
      );
      // The WAL exists while the connection is open (created by the statement above).
      this.#walFd = openSync(`${path}-wal`, 'r');
    } catch (cause) {
      throw ioError(`cannot open the director metadata database ${path}`, cause);
    }
    closeOnCollect.register(this, this.#walFd, this);
    this.#insert = this.#db.prepare('insert into metadata (repo, role, version, bytes) values (?, ?, ?, ?)');
    this.#select = this.#db
      .prepare('select bytes from metadata where repo = ? and role = ? and version = ?')
      .pluck();
    this.#latest = this.#db.prepare('select max(version) from metadata where repo = ? and role = ?').pluck();
    this.#delete = this.#db.prepare('delete from metadata where repo = ? and role = ? and version < ?');
    this.#repos = this.#db.prepare('select distinct repo from metadata').pluck();
  }

  /**
   * Closes the database (at the server's close: a store left open keeps its file system busy). The
   * next `open` of the path opens it again; this instance answers FLT_IO from then on.
   */
  async close(): Promise<void> {
    if (!this.#db.open) return;
    await this.#running?.catch(() => undefined);
    if (openStores.get(this.path)?.deref() === this) openStores.delete(this.path);
    closeOnCollect.unregister(this);
    this.#db.close();
    try {
      closeSync(this.#walFd);
    } catch {
      // already closed
    }
  }

  get(repo: string, role: StoredRole, version: number): Promise<Buffer | undefined> {
    checkStoreKey(repo, version);
    try {
      const bytes = this.#select.get(repo, role, version) as Buffer | undefined;
      return Promise.resolve(bytes);
    } catch (cause) {
      return Promise.reject(ioError(`cannot read TUF metadata ${repo}/${version}.${role}.json`, cause));
    }
  }

  latestVersion(repo: string, role: StoredRole): Promise<number | undefined> {
    checkStoreKey(repo, 1);
    try {
      const v = this.#latest.get(repo, role) as number | null;
      return Promise.resolve(v ?? undefined);
    } catch (cause) {
      return Promise.reject(ioError(`cannot read TUF metadata versions of ${repo}`, cause));
    }
  }

  async put(repo: string, role: StoredRole, version: number, bytes: Uint8Array): Promise<void> {
    checkStoreKey(repo, version);
    if (!DEVICE_REPO.test(repo))
      throw new FlotillaError('FLT_VALIDATION', `${repo} is not a device's director repository`);
    try {
      this.#insert.run(repo, role, version, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (cause) {
      if ((cause as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
        throw versionExists(repo, role, version);
      throw ioError(`cannot write TUF metadata ${repo}/${version}.${role}.json`, cause);
    }
    // A timestamp waits until it is on disk, and with it everything written before: targets and
    // snapshot need no fsync of their own (after a power cut SQLite replays a prefix of the WAL's
    // commits, so the timestamp is never there without what it names). One fsync wait per re-sign.
    if (role === 'timestamp') await this.durable();
  }

  deleteBelow(repo: string, role: StoredRole, version: number): Promise<void> {
    checkStoreKey(repo, 1);
    try {
      this.#delete.run(repo, role, version);
      return Promise.resolve();
    } catch (cause) {
      return Promise.reject(ioError(`cannot delete TUF metadata of ${repo}`, cause));
    }
  }

  listRepos(prefix: string): Promise<string[]> {
    try {
      const repos = (this.#repos.all() as string[]).filter((r) => r.startsWith(prefix));
      return Promise.resolve(repos.sort());
    } catch (cause) {
      return Promise.reject(ioError('cannot list the director metadata', cause));
    }
  }

  /**
   * Resolves once every write made before the call is on disk: by an fdatasync of the WAL that
   * starts after it, at the next turn of the event loop or after the one under way, and is shared
   * by every caller until it starts (group commit).
   */
  durable(): Promise<void> {
    if (this.#queued) return this.#queued;
    const after = this.#running
      ? this.#running.catch(() => undefined)
      : new Promise<void>((r) => setImmediate(r));
    const queued = after.then(() => {
      this.#queued = undefined;
      return this.#startSync();
    });
    this.#queued = queued;
    return queued;
  }

  #startSync(): Promise<void> {
    const running = new Promise<void>((resolveSync, reject) => {
      this.#sync(this.#walFd, (err) => {
        if (err) reject(ioError(`cannot sync the director metadata database ${this.path}`, err));
        else resolveSync();
      });
    }).finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }

  /**
   * Moves the device repositories written as files by earlier versions (`<tufDir>/director/<id>/`)
   * into this store, then removes the files. Idempotent: a crash in between imports again (a
   * version already here is kept). Returns the number of devices moved.
   */
  async importFrom(tufDir: string): Promise<number> {
    const directorDir = join(tufDir, 'director');
    let names: string[];
    try {
      names = await readdir(directorDir);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw ioError(`cannot list ${directorDir}`, cause);
    }
    const insert = this.#db.prepare(
      'insert or ignore into metadata (repo, role, version, bytes) values (?, ?, ?, ?)',
    );
    const devices: string[] = [];
    for (const device of names) {
      const repo = `director/${device}`;
      if (FILE_NAME.test(device) || device.startsWith('.') || !DEVICE_REPO.test(repo)) continue;
      const dir = join(directorDir, device);
      let files: string[];
      try {
        files = await readdir(dir);
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
        throw ioError(`cannot list ${dir}`, cause);
      }
      const rows: [string, string, number, Buffer][] = [];
      for (const file of files) {
        const m = FILE_NAME.exec(file);
        if (m) rows.push([repo, m[2]!, Number(m[1]), await readFile(join(dir, file))]);
      }
      this.#db.transaction(() => {
        for (const row of rows) insert.run(...row);
      })();
      devices.push(dir);
    }
    if (devices.length === 0) return 0;
    await this.durable();
    for (const dir of devices) await rm(dir, { recursive: true, force: true });
    return devices.length;
  }
}

/**
 * The server's metadata store: the devices' director repositories in `devices` (SQLite), the rest
 * (the image repository, the director's root) in `files`.
 */
export class RoutedMetadataStore implements MetadataStore {
  constructor(
    private readonly files: MetadataStore,
    private readonly devices: MetadataStore,
  ) {}

  #of(repo: string): MetadataStore {
    return repo.startsWith('director/') ? this.devices : this.files;
  }

  get(repo: string, role: StoredRole, version: number): Promise<Buffer | undefined> {
    return this.#of(repo).get(repo, role, version);
  }

  latestVersion(repo: string, role: StoredRole): Promise<number | undefined> {
    return this.#of(repo).latestVersion(repo, role);
  }

  put(repo: string, role: StoredRole, version: number, bytes: Uint8Array): Promise<void> {
    return this.#of(repo).put(repo, role, version, bytes);
  }

  deleteBelow(repo: string, role: StoredRole, version: number): Promise<void> {
    return this.#of(repo).deleteBelow(repo, role, version);
  }

  async listRepos(prefix: string): Promise<string[]> {
    const [files, devices] = await Promise.all([
      this.files.listRepos(prefix),
      this.devices.listRepos(prefix),
    ]);
    return [...new Set([...files, ...devices])].sort();
  }
}
