/**
 * Metadata on the local filesystem: `<dir>/<repo>/<version>.<role>.json`, written to a temporary
 * file, fsynced and linked into place (no-clobber), so a crash leaves a version complete or absent.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { createFileExclusive } from '@flotilla/node-kit';
import { checkStoreKey, versionExists } from './metadata-store.js';
import type { MetadataStore, StoredRole } from './metadata-store.js';

const FILE_NAME = /^([1-9][0-9]{0,15})\.(root|targets|snapshot|timestamp|gateway)\.json$/;

export class FsMetadataStore implements MetadataStore {
  constructor(private readonly dir: string) {}

  async get(repo: string, role: StoredRole, version: number): Promise<Buffer | undefined> {
    checkStoreKey(repo, version);
    try {
      return await readFile(join(this.dir, repo, `${version}.${role}.json`));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new FlotillaError('FLT_IO', `cannot read TUF metadata ${repo}/${version}.${role}.json`, {
        cause,
      });
    }
  }

  async latestVersion(repo: string, role: StoredRole): Promise<number | undefined> {
    checkStoreKey(repo, 1);
    let latest: number | undefined;
    for (const name of await this.#list(join(this.dir, repo))) {
      const m = FILE_NAME.exec(name);
      if (m?.[2] === role) latest = Math.max(latest ?? 0, Number(m[1]));
    }
    return latest;
  }

  async put(repo: string, role: StoredRole, version: number, bytes: Uint8Array): Promise<void> {
    checkStoreKey(repo, version);
    const dir = join(this.dir, repo);
    let created: 'created' | 'exists';
    try {
      created = await createFileExclusive(dir, `${version}.${role}.json`, bytes, 0o600);
    } catch (cause) {
      throw new FlotillaError('FLT_IO', `cannot write TUF metadata ${repo}/${version}.${role}.json`, {
        cause,
      });
    }
    if (created === 'exists') throw versionExists(repo, role, version);
  }

  async deleteBelow(repo: string, role: StoredRole, version: number): Promise<void> {
    checkStoreKey(repo, 1);
    const dir = join(this.dir, repo);
    for (const name of await this.#list(dir)) {
      const m = FILE_NAME.exec(name);
      if (m?.[2] !== role || Number(m[1]) >= version) continue;
      await unlink(join(dir, name)).catch((cause: NodeJS.ErrnoException) => {
        if (cause.code !== 'ENOENT')
          throw new FlotillaError('FLT_IO', `cannot delete ${repo}/${name}`, { cause });
      });
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

  async #list(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new FlotillaError('FLT_IO', `cannot list ${dir}`, { cause });
    }
  }
}
