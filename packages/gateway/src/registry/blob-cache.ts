import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { RegistryClient } from './client.js';
import { WriteBatch } from '../write-batch.js';
import { networkError } from './http.js';

/**
 * The content-addressed layer cache: `<dir>/blobs/sha256/<hex>` holds verified blobs (shared by
 * every image that has the layer); `<dir>/partial/<hex>` a download in progress, resumed with
 * HTTP Range after a cut (same process) or after a restart (another worker). A `<hex>.lock` file
 * (host and pid) keeps two downloaders on one cache from appending to the same partial file.
 */
export class BlobCache {
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(readonly dir: string) {}

  pathOf(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  async has(digest: string, size: number): Promise<boolean> {
    try {
      return (await stat(this.pathOf(digest))).size === size;
    } catch {
      return false;
    }
  }

  /**
   * The blob's path in the cache, downloading it if missing. `onBytes` gets the bytes on disk so
   * far. Concurrent calls for one digest in this process share one download.
   */
  async fetch(
    client: RegistryClient,
    repository: string,
    digest: string,
    size: number,
    onBytes: (bytes: number) => void,
  ): Promise<{ path: string; pulledBytes: number }> {
    if (await this.has(digest, size)) return { path: this.pathOf(digest), pulledBytes: 0 };
    let pulled = 0;
    const running = this.inFlight.get(digest);
    if (running) return { path: await running, pulledBytes: 0 };
    const job = this.download(client, repository, digest, size, (n, fresh) => {
      pulled += fresh;
      onBytes(n);
    });
    this.inFlight.set(digest, job);
    try {
      return { path: await job, pulledBytes: pulled };
    } finally {
      this.inFlight.delete(digest);
    }
  }

  private async download(
    client: RegistryClient,
    repository: string,
    digest: string,
    size: number,
    onBytes: (bytes: number, fresh: number) => void,
  ): Promise<string> {
    const hex = hexOf(digest);
    const partialDir = join(this.dir, 'partial');
    await mkdir(partialDir, { recursive: true });
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const partial = join(partialDir, hex);
    const release = await this.lock(
      join(partialDir, `${hex}.lock`),
      partial,
      client.limits.idleTimeoutMs,
      digest,
      size,
    );
    if (release === null) return this.pathOf(digest);
    try {
      let resumes = 0;
      for (;;) {
        try {
          await this.downloadOnce(client, repository, digest, size, partial, onBytes);
          break;
        } catch (error) {
          const retriable =
            error instanceof FlotillaError &&
            (error.code === 'FLT_REGISTRY_UNREACHABLE' ||
              error.code === 'FLT_REGISTRY_TIMEOUT' ||
              error.code === 'FLT_REGISTRY_ERROR');
          if (!retriable || resumes >= client.limits.maxResumes) throw error;
          resumes++;
        }
      }
      const final = this.pathOf(digest);
      await rename(partial, final);
      return final;
    } finally {
      await release();
    }
  }

  /** One GET, appending to the partial file from where it stops; verifies the digest at the end. */
  private async downloadOnce(
    client: RegistryClient,
    repository: string,
    digest: string,
    size: number,
    partial: string,
    onBytes: (bytes: number, fresh: number) => void,
  ): Promise<void> {
    const hash = createHash('sha256');
    let have = 0;
    try {
      have = (await stat(partial)).size;
    } catch {
      have = 0;
    }
    if (have > size) {
      await rm(partial, { force: true });
      have = 0;
    }
    if (have > 0) {
      // The bytes already on disk are hashed again: the digest covers the whole blob.
      for await (const chunk of createReadStream(partial, { end: have - 1 })) hash.update(chunk as Buffer);
    }
    const headers: Record<string, string> = {};
    if (have > 0 && have < size) headers.range = `bytes=${have}-`;
    const r =
      have === size && size > 0
        ? null
        : await client.request({
            path: `/v2/${repository}/blobs/${digest}`,
            scope: `repository:${repository}:pull`,
            headers,
          });
    if (r !== null) {
      if (r.res.status === 200 && have > 0) {
        // The registry ignored the Range: start over.
        await r.res.body?.cancel().catch(() => undefined);
        r.idle.done();
        await rm(partial, { force: true });
        return this.downloadOnce(client, repository, digest, size, partial, onBytes);
      }
      if (r.res.status !== 200 && r.res.status !== 206) return client.fail(r, `blob ${digest}`);
      const file = await open(partial, have > 0 ? 'a' : 'w');
      // The response's chunks are written in batches of about 1 MiB; what a cut leaves in the
      // batch is written on the way out, for the resume.
      const batch = new WriteBatch(file, null);
      try {
        if (r.res.body) {
          for await (const chunk of r.res.body) {
            r.idle.touch();
            const view = chunk as Uint8Array;
            const buf = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
            have += buf.length;
            if (have > size) {
              throw new FlotillaError(
                'FLT_REGISTRY_DIGEST_MISMATCH',
                `blob ${digest} is longer than the ${size} bytes its manifest says`,
                {
                  details: { digest, size },
                },
              );
            }
            hash.update(buf);
            await batch.push(buf);
            onBytes(have, buf.length);
          }
        }
        await batch.flush();
        await file.sync();
      } catch (error) {
        if (error instanceof FlotillaError && error.code === 'FLT_REGISTRY_DIGEST_MISMATCH') {
          await rm(partial, { force: true });
          throw error;
        }
        throw networkError(error, r.url, r.idle, undefined);
      } finally {
        await batch.flush().catch(() => undefined);
        await file.close();
        r.idle.done();
      }
    }
    if (have < size) {
      throw new FlotillaError(
        'FLT_REGISTRY_UNREACHABLE',
        `blob ${digest} was cut after ${have} of ${size} bytes`,
        {
          details: { digest, have, size },
        },
      );
    }
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== digest) {
      await rm(partial, { force: true });
      throw new FlotillaError('FLT_REGISTRY_DIGEST_MISMATCH', `blob ${digest} arrived with digest ${got}`, {
        details: { expected: digest, actual: got },
      });
    }
  }

  /**
   * Takes the download lock of a blob; null when another holder finished the blob meanwhile. A
   * lock whose holder is gone (same host, dead pid; other host, partial idle for 2 idle timeouts)
   * is taken over.
   */
  private async lock(
    lockPath: string,
    partial: string,
    idleMs: number,
    digest: string,
    size: number,
  ): Promise<(() => Promise<void>) | null> {
    const me = `${hostname()} ${process.pid}`;
    for (;;) {
      try {
        const fh = await open(lockPath, 'wx');
        await fh.writeFile(me);
        await fh.close();
        return async () => {
          await rm(lockPath, { force: true });
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (await this.has(digest, size)) return null;
      if (await lockIsStale(lockPath, partial, idleMs)) {
        await rm(lockPath, { force: true });
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function lockIsStale(lockPath: string, partial: string, idleMs: number): Promise<boolean> {
  let holder: string;
  try {
    const fh = await open(lockPath, 'r');
    try {
      holder = (await fh.readFile('utf8')).trim();
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
  const [host, pidText] = holder.split(' ');
  const pid = Number(pidText);
  if (host === hostname() && Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  try {
    const last = Math.max((await stat(partial)).mtimeMs, (await stat(lockPath)).mtimeMs);
    return Date.now() - last > 2 * idleMs;
  } catch {
    return false;
  }
}

function hexOf(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new FlotillaError('FLT_REGISTRY_MANIFEST_INVALID', `digest ${digest} is not sha256:<hex>`);
  return m[1] as string;
}
