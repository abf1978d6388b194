import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar-stream';
import { sha256 } from './scan.js';
import type { Seen } from './scan.js';
import { run, stopChild } from './services.js';

export interface Dockerd {
  /** Runs the docker CLI against this daemon. */
  docker(args: string[]): Promise<string>;
  /** `docker export` of a container, as a Buffer. */
  exportContainer(id: string): Promise<Buffer>;
  stop(): Promise<void>;
}

export function dockerdInstalled(): boolean {
  return ['/usr/sbin/dockerd', '/usr/bin/dockerd'].some((p) => existsSync(p));
}

/**
 * A private dockerd (its own socket, data and exec roots; vfs storage, no networking): DESIGN.md's
 * recipe with the default ulimits lowered, as the machine refuses to raise them.
 */
export async function startDockerd(dir: string): Promise<Dockerd> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'daemon.json');
  await writeFile(
    config,
    JSON.stringify({
      'default-ulimits': {
        nofile: { Name: 'nofile', Hard: 1024, Soft: 1024 },
        nproc: { Name: 'nproc', Hard: 1024, Soft: 1024 },
      },
    }),
  );
  const sock = join(dir, 'docker.sock');
  const child = spawn(
    'dockerd',
    [
      '--config-file',
      config,
      '--data-root',
      join(dir, 'root'),
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'docker.pid'),
      '-H',
      `unix://${sock}`,
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--storage-driver=vfs',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log = (log + c.toString()).slice(-4000);
  });
  const docker = async (args: string[]): Promise<string> =>
    (await run('docker', ['-H', `unix://${sock}`, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  for (let i = 0; ; i++) {
    try {
      await docker(['version', '--format', '{{.Server.Version}}']);
      break;
    } catch {
      if (child.exitCode !== null || i > 120) {
        await stopChild(child);
        throw new Error(`dockerd did not start: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    docker,
    exportContainer: (id) =>
      new Promise<Buffer>((resolve, reject) => {
        const p = spawn('docker', ['-H', `unix://${sock}`, 'export', id], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const parts: Buffer[] = [];
        p.stdout.on('data', (c: Buffer) => parts.push(c));
        p.on('error', reject);
        p.on('close', (code) =>
          code === 0 ? resolve(Buffer.concat(parts)) : reject(new Error(`docker export exited ${code}`)),
        );
      }),
    stop: () => stopChild(child),
  };
}

/** The entries of a tar (docker export) as the test compares them; hard links become files. */
export async function scanTar(bytes: Buffer): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const contents = new Map<string, string>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(c as Buffer);
      const path = `/${h.name.replace(/^\.?\/+/, '').replace(/\/+$/, '')}`;
      if (path === '/') continue;
      const base = { mode: h.mode & 0o7777, uid: h.uid, gid: h.gid };
      const xattrs: Record<string, string> = {};
      for (const [k, v] of Object.entries((h.pax ?? {}) as Record<string, string>)) {
        if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = v;
      }
      const x = Object.keys(xattrs).length > 0 ? { xattrs } : {};
      switch (h.type) {
        case 'directory':
          out.set(path, { type: 'dir', ...base, ...x });
          break;
        case 'symlink':
          out.set(path, { type: 'symlink', ...base, target: h.linkname });
          break;
        case 'link': {
          const to = `/${h.linkname.replace(/^\.?\/+/, '')}`;
          out.set(path, { type: 'file', ...base, sha256: contents.get(to) ?? '?', ...x });
          break;
        }
        case 'character-device':
          out.set(path, { type: 'char', ...base });
          break;
        case 'block-device':
          out.set(path, { type: 'block', ...base });
          break;
        case 'fifo':
          out.set(path, { type: 'fifo', ...base });
          break;
        default: {
          const sum = sha256(Buffer.concat(parts));
          contents.set(path, sum);
          out.set(path, { type: 'file', ...base, sha256: sum, ...x });
        }
      }
    }
  })();
  extract.end(bytes);
  await done;
  return out;
}
