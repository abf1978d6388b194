/**
 * A test importer that does real conversion work without a registry: it writes a small tree
 * derived from the image's name and tag and packs it with the real mksquashfs (reproducible, so
 * the test can rebuild the expected file). With `gate`, it waits in its converting phase until
 * that file exists, so a test can kill a worker mid-conversion.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ImageImporter, ImportRequest, ImportResult } from '@flotilla/gateway';

const run = promisify(execFile);

export async function writeFixtureTree(dir: string, repository: string, tag: string): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'etc', 'private'), { recursive: true });
  await writeFile(join(dir, 'etc', 'version'), `${repository}:${tag}\n`);
  await writeFile(join(dir, 'bin', 'hello'), `#!/bin/sh\necho ${repository} ${tag}\n`);
  await chmod(join(dir, 'bin', 'hello'), 0o755);
  await chmod(join(dir, 'etc', 'private'), 0o750);
  await writeFile(join(dir, 'etc', 'private', 'data'), Buffer.alloc(64 * 1024, repository.length));
  await symlink('../etc/version', join(dir, 'bin', 'version'));
}

export async function mksquashfs(src: string, out: string): Promise<void> {
  await run('mksquashfs', [
    src,
    out,
    '-noappend',
    '-quiet',
    '-no-progress',
    '-all-root',
    '-all-time',
    '0',
    '-mkfs-time',
    '0',
  ]);
}

export function fixtureImporter(options: { gate?: string } = {}): ImageImporter {
  return {
    async import(req: ImportRequest): Promise<ImportResult> {
      req.onProgress('pulling', 1);
      const tree = join(req.workDir, 'tree');
      await writeFixtureTree(tree, req.repository, req.tag);
      req.onProgress('converting', 0.1);
      if (options.gate !== undefined) {
        const gate = options.gate;
        while (!existsSync(gate)) {
          req.signal.throwIfAborted();
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      const out = join(req.workDir, 'image.sqfs');
      await mksquashfs(tree, out);
      req.onProgress('converting', 1);
      return { squashfsPath: out, manifestDigest: `sha256:${'0'.repeat(64)}` };
    },
  };
}
