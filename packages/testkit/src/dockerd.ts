/**
 * A private dockerd for tests (its own socket, data and exec roots; vfs storage; no default bridge
 * and no iptables, but user-defined bridge networks and published ports through docker-proxy):
 * DESIGN.md's recipe with the default ulimits lowered, as these machines refuse to raise them.
 * Test images are built locally from busybox-static (`docker import` of a rootfs tar); nothing is
 * pulled.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestDockerd {
  /** `unix:///…/docker.sock`: the value for DOCKER_HOST. */
  host: string;
  socket: string;
  /** Runs the docker CLI against this daemon; its stdout. */
  docker(args: string[]): Promise<string>;
  /** Stops the daemon (SIGTERM; containers stop with it); `start` brings it back on the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its directory (register with `t.after`; the directory is not a tempDir). */
  destroy(): Promise<void>;
  /** The daemon's process id while it runs (its re-executed children, such as `docker-untar`, have it as parent). */
  pid(): number | undefined;
}

export function dockerdAvailable(): boolean {
  return ['/usr/sbin/dockerd', '/usr/bin/dockerd'].some((p) => existsSync(p)) && existsSync('/bin/busybox');
}

let instances = 0;

/**
 * The address pool of one private dockerd's networks, its own: test files run in parallel, and
 * two dockerds creating a network at the same moment could both take the first default pool that
 * no host route covers yet (neither bridge exists when the other looks), giving two bridges the
 * same subnet and a container's address reaching the wrong one. 172.18–172.31 (not 172.17, a
 * system engine's docker0), a /20 for each dockerd of /24 networks: 224 slots, by process and
 * instance.
 */
function addressPool(): { base: string; size: number } {
  const slot = (process.pid * 31 + instances++) % 224;
  return { base: `172.${18 + (slot >> 4)}.${(slot & 15) << 4}.0/20`, size: 24 };
}

/** Starts a dockerd in `dir` (created), e.g. `mkdtempSync(join(tmpdir(), 'flt-dockerd-'))`. */
export async function startTestDockerd(dir: string): Promise<TestDockerd> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'daemon.json');
  await writeFile(
    config,
    JSON.stringify({
      'default-address-pools': [addressPool()],
      'default-ulimits': {
        nofile: { Name: 'nofile', Hard: 1024, Soft: 1024 },
        nproc: { Name: 'nproc', Hard: 1024, Soft: 1024 },
      },
    }),
  );
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const docker = async (args: string[]): Promise<string> =>
    (await run('docker', ['-H', host, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  let child: ChildProcess | null = null;
  let log = '';
  const start = async (): Promise<void> => {
    log = '';
    const proc = spawn(
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
        host,
        '--bridge=none',
        '--iptables=false',
        '--ip6tables=false',
        '--storage-driver=vfs',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = proc;
    proc.stderr?.on('data', (c: Buffer) => {
      log = (log + c.toString()).slice(-4000);
    });
    for (let i = 0; ; i++) {
      try {
        await docker(['version', '--format', '{{.Server.Version}}']);
        return;
      } catch {
        if (proc.exitCode !== null || i > 160) {
          await stopChild(proc);
          throw new Error(`dockerd did not start: ${log}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };
  await start();
  const stop = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (proc) await stopChild(proc);
    // Network namespaces and volumes dockerd left mounted under its directory (a hard stop).
    const mounts = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${dir}/`))
      .sort()
      .reverse();
    for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
  };
  return {
    host,
    socket,
    docker,
    start,
    stop,
    pid: () => child?.pid,
    destroy: async () => {
      if (child !== null) {
        // Containers and networks first: a network's bridge interface outlives a stopped dockerd.
        const ids = (await docker(['ps', '-aq']).catch(() => '')).split('\n').filter(Boolean);
        if (ids.length > 0) await docker(['rm', '-f', ...ids]).catch(() => undefined);
        await docker(['network', 'prune', '-f']).catch(() => undefined);
      }
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

const APPLETS = [
  'sh',
  'httpd',
  'wget',
  'sleep',
  'echo',
  'cat',
  'date',
  'mkdir',
  'ls',
  'false',
  'true',
  'nc',
  'env',
];

/**
 * Imports a busybox-static image as `tag` (with `files`: path → content added to its root); returns
 * its image id (`sha256:…`).
 */
export async function importBusyboxImage(
  d: TestDockerd,
  tag: string,
  files: Record<string, string> = {},
): Promise<string> {
  const root = join(dirname(d.socket), `rootfs-${tag.replace(/[^A-Za-z0-9]/g, '_')}`);
  await rm(root, { recursive: true, force: true });
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'tmp'), { recursive: true });
  await copyFile('/bin/busybox', join(root, 'bin/busybox'));
  for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  const tar = `${root}.tar`;
  await run('tar', ['-C', root, '-cf', tar, '.']);
  await d.docker(['import', '--change', 'ENV PATH=/bin', tar, tag]);
  await rm(root, { recursive: true, force: true });
  await rm(tar, { force: true });
  return (await d.docker(['image', 'inspect', '--format', '{{.Id}}', tag])).trim();
}
