/** `local` platforms: an image directory on a file system the nodes share. */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Delivery } from './delivery.js';
import { temporaryName } from './delivery.js';

export class LocalDelivery implements Delivery {
  constructor(private readonly imageDir: string) {}

  async deliver(file: string, name: string): Promise<string> {
    await mkdir(this.imageDir, { recursive: true, mode: 0o755 });
    const final = join(this.imageDir, name);
    const temp = join(this.imageDir, temporaryName(name, randomBytes(6).toString('hex')));
    try {
      await copyFile(file, temp, constants.COPYFILE_FICLONE);
      const handle = await open(temp, 'r+');
      try {
        await handle.chmod(0o644);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, final);
      await syncDir(this.imageDir);
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
    return final;
  }

  async remove(path: string): Promise<void> {
    await rm(path, { force: true });
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
