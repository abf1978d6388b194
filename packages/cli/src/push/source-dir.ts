import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';

/** The absolute path of the directory to push, checked before anything is sent to the server. */
export async function sourceDirectory(cwd: string, dir: string): Promise<string> {
  const path = resolve(cwd, dir);
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FlotillaError('FLT_NOT_FOUND', `no such directory: ${path}`, { cause });
    throw new FlotillaError('FLT_IO', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  if (!isDir) throw new FlotillaError('FLT_VALIDATION', `${path} is not a directory`);
  return path;
}
