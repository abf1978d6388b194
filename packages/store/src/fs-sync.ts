/**
 * Durability for many files at once. An fsync per file costs a journal commit each (a quarter of
 * staging time on a tree of 3,000 files, bench/README.md "delta"); syncfs(2) flushes the whole
 * filesystem in one call, as OSTree does after a checkout. Node has no syncfs binding, so this runs
 * coreutils' `sync --file-system` (one process, a few ms); where it is missing or fails, the caller
 * gets false and falls back to fsyncing what it wrote.
 */
import { execFile } from 'node:child_process';

export function syncFilesystem(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('sync', ['--file-system', path], { timeout: 120_000 }, (error) => resolve(error === null));
  });
}
