import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What `tempDir` needs of a test: somewhere to register the cleanup. */
export interface CleanupContext {
  after: (fn: () => void | Promise<void>) => void;
}

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t: CleanupContext, prefix = 'flt-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
