/** Release trees for update tests: a "server" store, trees built from directories, release specs. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { releaseTargetPath } from '@flotilla/protocol';
import type { RuntimeKind } from '@flotilla/protocol';
import { FsStore, buildTree } from '@flotilla/store';
import { pino } from 'pino';
import { openStateDatabase } from '../../src/state/db.js';
import type { StateDatabase } from '../../src/state/db.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { tempDir } from '@flotilla/testkit';

export const quietLogger = () => pino({ level: process.env.FLT_TEST_LOG ?? 'silent' });

/** Writes `files` (path → content) under a new directory. */
export function writeTree(root: string, files: Record<string, string | Buffer>): string {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

/** `count` files of `size` random bytes each, in a few directories. */
export function randomFiles(count: number, size: number, seed = 'f'): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < count; i++) files[`d${i % 4}/${seed}${i}.bin`] = randomBytes(size);
  return files;
}

export async function serverStore(t: TestContext): Promise<FsStore> {
  return FsStore.open({ root: join(tempDir(t, 'flt-srv-'), 'store') });
}

export async function buildRelease(
  store: FsStore,
  dir: string,
  spec: { app: string; version: string; runtime?: RuntimeKind; config?: Record<string, unknown> },
): Promise<ReleaseSpec> {
  const { root } = await buildTree(dir, { sink: store });
  return {
    app: spec.app,
    version: spec.version,
    runtime: spec.runtime ?? 'files',
    root,
    targetPath: releaseTargetPath(spec.app, spec.version, root),
    config: spec.config ?? {},
  };
}

/** Opens state.db; the caller closes it (after whatever still writes to it). */
export function stateDb(t: TestContext, dataDir: string): StateDatabase {
  mkdirSync(dataDir, { recursive: true });
  void t;
  return openStateDatabase(join(dataDir, 'state.db'));
}
