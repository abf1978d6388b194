/**
 * End-to-end harness: real `flotilla` processes (server, agents) started from the built CLI, talked
 * to over real HTTP. Every process started here is killed by `cleanup()`.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ObjectRoutes } from '@flotilla/protocol';
import { decodeFrame, encodeFrame, readFrameHeader } from '@flotilla/store';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (this file is compiled to test/e2e/dist/). */
export const repoRoot = process.env.FLOTILLA_REPO_ROOT ?? resolve(here, '..', '..', '..');
export const cliBin = join(repoRoot, 'packages', 'cli', 'dist', 'src', 'bin.js');
export const ADMIN_PASSWORD = 'e2e-admin-password-1234';

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes; the last error is reported. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(
    `timed out waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`,
  );
}

export interface Proc {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export class Cluster {
  readonly procs: Proc[] = [];
  private readonly dirs: string[] = [];
  private readonly databases: string[] = [];

  async tempDir(prefix = 'flt-e2e-'): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  /** A fresh PostgreSQL database, dropped at cleanup. */
  async postgresDatabase(): Promise<string> {
    const base = process.env.FLOTILLA_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    const name = `flt_e2e_${Math.random().toString(36).slice(2, 10)}`;
    const client = new pg.Client({ connectionString: base });
    await client.connect();
    await client.query(`CREATE DATABASE ${name}`);
    await client.end();
    this.databases.push(name);
    const url = new URL(base);
    url.pathname = `/${name}`;
    return url.toString();
  }

  spawnCli(name: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = spawn(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const keep = (b: Buffer) => {
      out += b.toString();
      if (out.length > 2_000_000) out = out.slice(-1_000_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const p: Proc = { name, child, output: () => out, exited };
    this.procs.push(p);
    return p;
  }

  async startServer(
    opts: { dataDir?: string; port?: number; database?: string; env?: Record<string, string> } = {},
  ) {
    const dataDir = opts.dataDir ?? (await this.tempDir('flt-server-'));
    const port = opts.port ?? (await freePort());
    const args = ['server', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--log-format', 'json'];
    if (opts.database) args.push('--database', opts.database);
    // A short offline window so that tests see a silent device go offline quickly.
    const proc = this.spawnCli('server', args, {
      FLOTILLA_ADMIN_PASSWORD: ADMIN_PASSWORD,
      FLOTILLA_OFFLINE_AFTER_MS: '5s',
      ...opts.env,
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(`server ready at ${url}`, async () => {
      if (proc.child.exitCode !== null) throw new Error(`server exited: ${proc.output()}`);
      const r = await fetch(`${url}/readyz`);
      return r.ok;
    });
    return { url, port, dataDir, proc };
  }

  async startAgent(opts: {
    server: string;
    registrationKey: string;
    tags?: string[];
    facts?: Record<string, string>;
    dataDir?: string;
    extraArgs?: string[];
  }) {
    const dataDir = opts.dataDir ?? (await this.tempDir('flt-agent-'));
    const keyFile = join(dataDir, 'registration.key');
    await writeFile(keyFile, opts.registrationKey + '\n', { mode: 0o600 });
    const inventoryDir = join(dataDir, 'inventory.d');
    await mkdir(inventoryDir, { recursive: true });
    if (opts.facts) {
      const script = join(inventoryDir, 'custom-facts');
      const lines = Object.entries(opts.facts).map(([k, v]) => `echo '${k}=${v}'`);
      await writeFile(script, `#!/bin/sh\n${lines.join('\n')}\n`);
      await chmod(script, 0o755);
    }
    const args = [
      'agent',
      '--server',
      opts.server,
      '--data-dir',
      dataDir,
      '--registration-key-file',
      keyFile,
    ];
    args.push('--inventory-dir', inventoryDir, '--poll-interval', '2s', '--log-format', 'json');
    if (opts.tags?.length) args.push('--tags', opts.tags.join(','));
    args.push(...(opts.extraArgs ?? []));
    const proc = this.spawnCli(`agent-${this.procs.length}`, args);
    return { dataDir, proc };
  }

  async stop(p: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
    return p.exited;
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
    await Promise.all(this.procs.map((p) => p.exited));
    for (const d of this.dirs) await rm(d, { recursive: true, force: true });
    if (this.databases.length) {
      const base = process.env.FLOTILLA_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      for (const db of this.databases) await client.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await client.end();
    }
  }
}

/** A minimal operator API client for tests: JSON in, JSON out, status kept. */
export class Api {
  constructor(
    readonly base: string,
    private token: string | null = null,
  ) {}

  static async login(base: string, username = 'admin', password = ADMIN_PASSWORD): Promise<Api> {
    const r = await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (!r.ok) throw new Error(`login failed: ${r.status} ${await r.text()}`);
    const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const t = await fetch(`${base}/api/v1/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: JSON.stringify({ name: 'e2e' }),
    });
    if (!t.ok) throw new Error(`token failed: ${t.status} ${await t.text()}`);
    const body = (await t.json()) as { secret: string };
    return new Api(base, body.secret);
  }

  get bearer(): string {
    return this.token ?? '';
  }

  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(`${this.base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: (text ? JSON.parse(text) : null) as T };
  }
}

/**
 * A reverse proxy in front of the server, as a CDN or a hostile network path would be, that can
 * alter objects in transit. While `tamper` names object ids, the pack, tree-pack and delta routes
 * answer 404 (what an older server answers: the agent falls back to one GET per object) and each
 * named object's frame is served re-encoded around content whose first byte is flipped, so that
 * it decodes cleanly to bytes that do not hash to its id. Everything else, WebSocket upgrades
 * included, passes through unchanged.
 */
export class TamperingProxy {
  readonly tamper = new Set<string>();
  /** Ids whose altered frame was served. */
  readonly served = new Set<string>();
  url = '';
  private server: HttpServer | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly target: string) {}

  async start(): Promise<void> {
    const target = new URL(this.target);
    const upstream = { host: target.hostname, port: Number(target.port) };
    this.server = createHttpServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (
        this.tamper.size > 0 &&
        req.method === 'POST' &&
        [ObjectRoutes.pack, ObjectRoutes.treePack, ObjectRoutes.deltas].includes(path as never)
      ) {
        req.resume();
        res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      const id = /^\/api\/v1\/objects\/([0-9a-f]{64})$/.exec(path)?.[1];
      const forward = httpRequest(
        { ...upstream, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          if (!id || !this.tamper.has(id) || answer.statusCode !== 200) {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
            return;
          }
          const parts: Buffer[] = [];
          answer.on('data', (b: Buffer) => parts.push(b));
          answer.on('end', () => {
            const frame = Buffer.concat(parts);
            const content = decodeFrame(frame);
            content[0] = (content[0] ?? 0) ^ 0xff;
            const altered = encodeFrame(content, { codec: readFrameHeader(frame).codec });
            this.served.add(id);
            res.writeHead(200, { ...answer.headers, 'content-length': String(altered.length) }).end(altered);
          });
        },
      );
      forward.on('error', () => res.destroy());
      req.pipe(forward);
    });
    // WebSocket (and any other) upgrades: the raw bytes both ways.
    this.server.on('upgrade', (req, socket: Socket, head: Buffer) => {
      const up = connect(upstream.port, upstream.host, () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2)
          lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        up.write(`${lines.join('\r\n')}\r\n\r\n`);
        up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      this.sockets.add(up).add(socket);
      const drop = () => {
        up.destroy();
        socket.destroy();
      };
      up.on('error', drop).on('close', drop);
      socket.on('error', drop).on('close', drop);
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** The CLI run to completion with the given config directory (and extra environment). */
export function runCli(
  configDir: string,
  args: string[],
  env: Record<string, string> = {},
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliBin, ...args], {
    env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir, ...env },
    encoding: 'utf8',
    input: '',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface AgentBundleServer {
  /** The test's directory; `root` under it is the machine the agent is installed into. */
  work: string;
  root: string;
  /** The CLI's config directory (logged in as admin) and its offline keys (initialised). */
  configDir: string;
  keysDir: string;
  url: string;
  api: Api;
}

/**
 * Where the agent lifecycle tests start: agent bundle 1.0.0 built into `<work>/<bundleName>` and
 * served by a new server as its agent download, the CLI logged in, offline keys made.
 */
export async function startAgentBundleServer(
  cluster: Cluster,
  prefix: string,
  bundleName: string,
): Promise<AgentBundleServer> {
  const work = await cluster.tempDir(prefix);
  const downloads = join(work, 'downloads');
  const configDir = join(work, 'cli');
  const keysDir = join(configDir, 'keys');
  const bundle = runCli(configDir, [
    'agent',
    'bundle',
    '--out',
    join(work, bundleName),
    '--version',
    '1.0.0',
    '--downloads',
    downloads,
  ]);
  if (bundle.code !== 0) throw new Error(`agent bundle failed: ${bundle.stderr}`);
  const server = await cluster.startServer({ env: { FLOTILLA_AGENT_DOWNLOADS_DIR: downloads } });
  const api = await Api.login(server.url);
  const login = spawnSync(
    process.execPath,
    [cliBin, 'login', '--server', server.url, '--user', 'admin', '--password-stdin'],
    {
      input: `${ADMIN_PASSWORD}\n`,
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
      encoding: 'utf8',
    },
  );
  if (login.status !== 0) throw new Error(`login failed: ${login.stderr}`);
  const keys = runCli(configDir, ['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]);
  if (keys.code !== 0) throw new Error(`keys init failed: ${keys.stderr}`);
  return { work, root: join(work, 'root'), configDir, keysDir, url: server.url, api };
}
