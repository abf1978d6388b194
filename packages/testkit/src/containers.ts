/**
 * A private dockerd and Debian's docker-registry for tests and benchmarks (the recipe of the image
 * gateway's tests, packages/gateway/test/helpers, shared here): their own sockets, data roots and
 * ports on 127.0.0.1; nothing is pulled from the internet. Test images come from busybox-static.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTestDockerd } from './dockerd.js';
import { freePort } from './net.js';

const run = promisify(execFile);

export interface PrivateDockerd {
  /** `unix://…` socket path of this daemon (for dockerode: `{ socketPath }`). */
  socketPath: string;
  /** Runs the docker CLI against this daemon; resolves to its stdout. */
  docker(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export function containerToolsInstalled(): { dockerd: boolean; registry: boolean } {
  return {
    dockerd:
      ['/usr/sbin/dockerd', '/usr/bin/dockerd'].some((p) => existsSync(p)) &&
      ['/usr/bin/docker', '/usr/local/bin/docker'].some((p) => existsSync(p)),
    registry: existsSync('/usr/bin/docker-registry'),
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(timer);
}

/**
 * A private dockerd (dockerd.ts's `startTestDockerd`), with the socket path dockerode takes. Its
 * `stop` removes the containers and networks first: a network's bridge interface outlives the
 * daemon, and leftovers use up the default address pools of every later daemon on the machine.
 */
export async function startPrivateDockerd(dir: string): Promise<PrivateDockerd> {
  const d = await startTestDockerd(dir);
  const stop = async (): Promise<void> => {
    const ids = (await d.docker(['ps', '-aq']).catch(() => '')).split('\n').filter(Boolean);
    if (ids.length > 0) await d.docker(['rm', '-f', ...ids]).catch(() => undefined);
    await d.docker(['network', 'prune', '-f']).catch(() => undefined);
    await d.stop();
  };
  return { socketPath: d.socket, docker: (args) => d.docker(args), stop };
}

export interface LocalRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, the host part of image refs. */
  host: string;
  stop(): Promise<void>;
}

/** Debian's docker-registry (distribution 2.8) on 127.0.0.1 without authentication. */
export async function startLocalRegistry(dir: string): Promise<LocalRegistry> {
  await mkdir(join(dir, 'storage'), { recursive: true });
  const port = await freePort();
  const config = `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`;
  await writeFile(join(dir, 'config.yml'), config);
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log = (log + c.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`${url}/v2/`);
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || i > 200) {
      await stopChild(child);
      throw new Error(`docker-registry did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, host: `127.0.0.1:${port}`, stop: () => stopChild(child) };
}

/**
 * Imports an image into `dockerd` as `ref` from busybox-static plus `files` (path → content):
 * `docker import` of a rootfs tar, then, when `appFiles` is given, a second layer with them
 * (`docker build` of `COPY`), so images share their busybox layer.
 */
export async function importLayeredBusyboxImage(
  dockerd: PrivateDockerd,
  dir: string,
  ref: string,
  appFiles: Record<string, string | Buffer> = {},
): Promise<string> {
  const base = join(dir, 'busybox-rootfs');
  if (!existsSync(join(dir, 'busybox.tar'))) {
    await mkdir(join(base, 'bin'), { recursive: true });
    await run('cp', ['/bin/busybox', join(base, 'bin', 'busybox')]);
    await run('ln', ['-sf', 'busybox', join(base, 'bin', 'sh')]);
    await run('tar', [
      '--sort=name',
      '--mtime=@1700000000',
      '--owner=0',
      '--group=0',
      '-C',
      base,
      '-cf',
      join(dir, 'busybox.tar'),
      '.',
    ]);
  }
  const baseRef = 'flotilla-test/busybox:base';
  await dockerd.docker(['import', '--change', 'CMD ["/bin/sh"]', join(dir, 'busybox.tar'), baseRef]);
  if (Object.keys(appFiles).length === 0) {
    await dockerd.docker(['tag', baseRef, ref]);
  } else {
    const ctx = join(dir, `ctx-${ref.replace(/[^a-z0-9]+/gi, '_')}`);
    await mkdir(join(ctx, 'app'), { recursive: true });
    for (const [name, content] of Object.entries(appFiles)) {
      await mkdir(join(ctx, 'app', name, '..'), { recursive: true });
      await writeFile(join(ctx, 'app', name), content);
    }
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${baseRef}\nCOPY app /app\n`);
    await run('docker', ['-H', `unix://${dockerd.socketPath}`, 'build', '-q', '-t', ref, ctx], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      maxBuffer: 16 * 1024 * 1024,
    });
  }
  return (await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
}
