/**
 * Where the TUF repositories keep their metadata: immutable versioned files per repository and role
 * (`<version>.<role>.json`). Repositories are named `image`, `director` (the director's root, shared
 * by all devices) and `director/<deviceId>`. A database implementation can follow this interface.
 */
import { FlotillaError } from '@flotilla/protocol';

/** The top-level roles, and `gateway`: the image repository's delegated targets role (signed online). */
export type StoredRole = 'root' | 'targets' | 'snapshot' | 'timestamp' | 'gateway';

export interface MetadataStore {
  /** The bytes of one version, or undefined. */
  get(repo: string, role: StoredRole, version: number): Promise<Buffer | undefined>;
  /** The highest stored version of a role, or undefined when there is none. */
  latestVersion(repo: string, role: StoredRole): Promise<number | undefined>;
  /** Stores a new version; FLT_CONFLICT if it exists (published versions never change). */
  put(repo: string, role: StoredRole, version: number, bytes: Uint8Array): Promise<void>;
  /** The names of the repositories whose name starts with `prefix`. */
  listRepos(prefix: string): Promise<string[]>;
  /** Deletes the versions of a role below `version` (superseded online metadata nobody fetches any more). */
  deleteBelow(repo: string, role: StoredRole, version: number): Promise<void>;
}

const REPO_NAME = /^(image|director|director\/[A-Za-z0-9_-]{1,128})$/;

/** Throws FLT_VALIDATION for a repository name or version that could not be stored safely. */
export function checkStoreKey(repo: string, version: number): void {
  if (!REPO_NAME.test(repo))
    throw new FlotillaError('FLT_VALIDATION', `invalid TUF repository name: ${repo}`);
  if (!Number.isSafeInteger(version) || version < 1)
    throw new FlotillaError('FLT_VALIDATION', `invalid metadata version: ${version}`);
}

export function versionExists(repo: string, role: StoredRole, version: number): FlotillaError {
  return new FlotillaError('FLT_CONFLICT', `${repo}: ${version}.${role}.json already exists`, {
    details: { repo, role, version },
  });
}

/** Keeps everything in memory: tests and single-process experiments. */
export class MemoryMetadataStore implements MetadataStore {
  readonly #files = new Map<string, Map<number, Buffer>>();

  get(repo: string, role: StoredRole, version: number): Promise<Buffer | undefined> {
    const bytes = this.#files.get(`${repo}\0${role}`)?.get(version);
    return Promise.resolve(bytes === undefined ? undefined : Buffer.from(bytes));
  }

  latestVersion(repo: string, role: StoredRole): Promise<number | undefined> {
    const versions = this.#files.get(`${repo}\0${role}`);
    return Promise.resolve(versions && versions.size > 0 ? Math.max(...versions.keys()) : undefined);
  }

  put(repo: string, role: StoredRole, version: number, bytes: Uint8Array): Promise<void> {
    checkStoreKey(repo, version);
    const key = `${repo}\0${role}`;
    let versions = this.#files.get(key);
    if (!versions) this.#files.set(key, (versions = new Map<number, Buffer>()));
    if (versions.has(version)) return Promise.reject(versionExists(repo, role, version));
    versions.set(version, Buffer.from(bytes));
    return Promise.resolve();
  }

  deleteBelow(repo: string, role: StoredRole, version: number): Promise<void> {
    const versions = this.#files.get(`${repo}\0${role}`);
    for (const v of [...(versions?.keys() ?? [])]) if (v < version) versions?.delete(v);
    return Promise.resolve();
  }

  listRepos(prefix: string): Promise<string[]> {
    const repos = new Set([...this.#files.keys()].map((k) => k.slice(0, k.indexOf('\0'))));
    return Promise.resolve([...repos].filter((r) => r.startsWith(prefix)).sort());
  }
}
