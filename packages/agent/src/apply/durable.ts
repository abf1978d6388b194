/**
 * A staged tree whose durability waits for the commit (staging.ts `durableAtCommit`): the stage
 * step renames it into place without a sync and starts one here, which runs while the runtime
 * starts the release (docker load, the containers replaced); the commit step waits for it, or runs
 * one itself when the agent restarted meanwhile, before the release is recorded as committed. An
 * agent killed in between loses nothing (the page cache outlives the process); a power cut before
 * the commit leaves an uncommitted release whose start verifies what it reads.
 */
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { syncFilesystem } from '@flotilla/store';
import { ioError } from '../util/fs-ops.js';

export class DurableTrees {
  private readonly pending = new Map<string, { done: Promise<void>; finished: boolean }>();

  /** The trees kept: begun and not settled, or the newest whose commit may still come. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Starts making `dir` durable; `then` runs once it is (e.g. saving the stamps of its files).
   * Resolves (never rejects) when that is over; callers need not wait for it.
   */
  begin(dir: string, then?: () => void): Promise<void> {
    // A tree whose sync is over and whose commit never came (rolled back) is forgotten here, so
    // the map does not grow with each rollback; a late settle of one only syncs again.
    for (const [begun, entry] of this.pending) if (entry.finished) this.pending.delete(begun);
    const entry = { done: syncTree(dir).then(() => then?.()), finished: false };
    this.pending.set(dir, entry);
    // A failure is seen by `settle`, which runs the sync again.
    return entry.done.then(
      () => void (entry.finished = true),
      () => void (entry.finished = true),
    );
  }

  /** Resolves once `dir` is durable: the sync `begin` started, or a new one. */
  async settle(dir: string): Promise<void> {
    const begun = this.pending.get(dir);
    this.pending.delete(dir);
    if (begun !== undefined) {
      try {
        await begun.done;
        return;
      } catch {
        // once more below; its error is the one reported
      }
    }
    await syncTree(dir);
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
