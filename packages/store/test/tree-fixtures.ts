import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson, contentId, encodeObject } from '../src/index.js';
import type { DirEntry, MemoryStore } from '../src/index.js';
import { seededBytes } from './helpers.js';

/**
 * A small but varied release on disk: nested dirs, an empty dir, an empty file, an executable,
 * a large file (several chunks), a shared chunk, relative symlinks and a read-only directory.
 */
export async function writeSampleTree(root: string): Promise<void> {
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'etc/app/conf.d'), { recursive: true });
  await mkdir(join(root, 'empty-dir'));
  await mkdir(join(root, 'lib/big'), { recursive: true });
  await mkdir(join(root, 'readonly'));
  await writeFile(join(root, 'bin/run'), '#!/bin/sh\necho hello\n');
  await chmod(join(root, 'bin/run'), 0o755);
  await writeFile(join(root, 'etc/app/app.conf'), 'listen = 8080\n');
  await writeFile(join(root, 'etc/app/conf.d/10-extra.conf'), 'extra = true\n');
  await writeFile(join(root, 'empty-file'), '');
  await writeFile(join(root, 'lib/big/blob.bin'), seededBytes(21, 1024 * 1024 + 333));
  await writeFile(join(root, 'lib/big/copy.bin'), seededBytes(21, 1024 * 1024 + 333));
  await writeFile(join(root, 'readonly/data'), 'frozen');
  await chmod(join(root, 'readonly/data'), 0o444);
  await chmod(join(root, 'readonly'), 0o555);
  await symlink('bin/run', join(root, 'run-link'));
  await symlink('../../bin/run', join(root, 'etc/app/run'));
  await symlink('missing-target', join(root, 'dangling'));
}

/** Puts a directory object into a store without validation, as an attacker would serve it. */
export async function putRawDir(store: MemoryStore, entries: Record<string, unknown>[]): Promise<string> {
  const bytes = Buffer.from(canonicalJson({ type: 'dir', entries } as never), 'utf8');
  const id = contentId(bytes);
  await store.putObject(id, bytes);
  return id;
}

export async function putDir(store: MemoryStore, entries: DirEntry[]): Promise<string> {
  const { id, bytes } = encodeObject({ type: 'dir', entries });
  await store.putObject(id, bytes);
  return id;
}

export async function putFile(store: MemoryStore, content: Buffer, mode = 0o644): Promise<string> {
  const chunks = content.length === 0 ? [] : [{ id: contentId(content), size: content.length }];
  if (content.length > 0) await store.putChunk(contentId(content), content);
  const { id, bytes } = encodeObject({ type: 'file', mode, size: content.length, chunks });
  await store.putObject(id, bytes);
  return id;
}
