/**
 * `remote` platforms: the image is copied over SFTP to the platform's host (as Shifter does with
 * scp), under a temporary name, then renamed with OpenSSH's posix-rename (atomic on the remote file
 * system). The host key is pinned by its SHA-256 fingerprint: an unknown key refuses the copy.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import type { PlatformAccess } from '../config/config.js';
import type { Delivery } from './delivery.js';
import { temporaryName } from './delivery.js';

type RemoteAccess = Extract<PlatformAccess, { type: 'remote' }>;

const READY_TIMEOUT_MS = 20_000;

export class RemoteDelivery implements Delivery {
  constructor(private readonly access: RemoteAccess) {}

  private async connect(): Promise<SftpClient> {
    // The library's default listeners print to the console; errors reach us as rejected operations.
    const client = new SftpClient('flotilla-gateway', { error: ignore, end: ignore, close: ignore });
    const expected = this.access.hostKeySha256.replace(/^SHA256:/, '').replace(/=+$/, '');
    await client.connect({
      host: this.access.host,
      port: this.access.port,
      username: this.access.username,
      privateKey: await readFile(this.access.privateKeyFile),
      readyTimeout: READY_TIMEOUT_MS,
      hostVerifier: (key: Buffer) =>
        createHash('sha256').update(key).digest('base64').replace(/=+$/, '') === expected,
    });
    return client;
  }

  async deliver(file: string, name: string): Promise<string> {
    const dir = this.access.imageDir;
    const final = posix.join(dir, name);
    const temp = posix.join(dir, temporaryName(name, randomBytes(6).toString('hex')));
    const client = await this.connect();
    try {
      await client.mkdir(dir, true);
      try {
        await client.fastPut(file, temp, { mode: 0o644 });
        await client.posixRename(temp, final);
      } catch (e) {
        await client.delete(temp, true).catch(() => undefined);
        throw e;
      }
    } finally {
      await client.end();
    }
    return final;
  }

  async remove(path: string): Promise<void> {
    const client = await this.connect();
    try {
      await client.delete(path, true);
    } finally {
      await client.end();
    }
  }
}

function ignore(): void {
  // see connect()
}
