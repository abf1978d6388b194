/**
 * A staged tree whose durability waits for the commit (staging.ts `durableAtCommit`): the stage
 * step renames it into place without a sync and defers it here; the commit step makes it durable
 * (one syncfs) before the release is recorded as committed, then runs what was deferred with it
 * (saving its files' stamps). The sync used to begin at the stage, beside the engine's extraction
 * of the new image: the syncfs flushed the engine's writes as well and stretched that extraction
 * by 0.15–0.2 s (bench/README.md "containers"); at the commit the new containers already serve.
 * An agent killed in between loses nothing (the page cache outlives the process, and the commit
 * after a restart syncs); a power cut before the commit leaves an uncommitted release whose start
 * verifies what it reads.
 */
import { readdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { syncFilesystem } from '@flotilla/store';
import { ioError } from '../util/fs-ops.js';

export class DurableTrees {
  /** Trees staged and not yet made durable, with what runs once each is. */
  private readonly deferred = new Map<string, (() => void) | undefined>();

  /** The trees deferred and not settled. */
  get size(): number {
    return this.deferred.size;
  }

  /**
   * `dir` (a release's tree) is made durable by its commit (`settle`); `then` runs once it is. A
   * tree deferred before beside it (its app's other release, rolled back and never committed) is
   * forgotten, so the map does not grow with each rollback.
   */
  defer(dir: string, then?: () => void): void {
    for (const other of this.deferred.keys())
      if (dirname(other) === dirname(dir)) this.deferred.delete(other);
    this.deferred.set(dir, then);
  }

  /** Makes `dir` durable, then runs what `defer` gave for it (nothing after a restart). */
  async settle(dir: string): Promise<void> {
    const then = this.deferred.get(dir);
    this.deferred.delete(dir);
    await syncTree(dir);
    then?.();
  }
}

/** One syncfs of the tree's file system; where that fails, an fsync of every file and directory. */
export async function syncTree(dir: string): Promise<void> {
  if (await syncFilesystem(dir)) return;
  await syncEach(dir);
}

async function syncEach(path: string): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true }).catch((e: unknown) => {
    throw ioError('cannot read', path, e);
  });
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) await syncEach(child);
    else if (entry.isFile()) await syncOne(child);
  }
  await syncOne(path);
}

async function syncOne(path: string): Promise<void> {
  try {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (e) {
    throw ioError('cannot sync', path, e);
  }
}
