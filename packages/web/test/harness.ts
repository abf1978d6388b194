/**
 * Browser end-to-end harness: a real `flotilla server` process (the built CLI, serving the built
 * dashboard), operators and devices created over the real HTTP API, and Debian's Chromium driven by
 * playwright-core. Everything started here is stopped by `close()`.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { freePort } from '@flotilla/testkit';
import { buildDashboard } from '../src/build.js';
import { dashboardDir, packageDir } from '../src/paths.js';

export const repoRoot = process.env.FLOTILLA_REPO_ROOT ?? resolve(packageDir, '..', '..');
export const cliBin = join(repoRoot, 'packages', 'cli', 'dist', 'src', 'bin.js');
export const screenshotDir = join(repoRoot, 'docs', 'screenshots');
export const CHROMIUM = process.env.FLOTILLA_CHROMIUM ?? '/usr/bin/chromium';
export const ADMIN_PASSWORD = 'web-e2e-admin-password';

export const DESKTOP = { width: 1366, height: 900 };
export const PHONE = { width: 390, height: 844 };

/** Why the browser tests cannot run here, or null. */
export function browserMissing(): string | null {
  return existsSync(CHROMIUM)
    ? null
    : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run does)`;
}

export async function ensureDashboardBuilt(): Promise<void> {
  if (!existsSync(join(dashboardDir, 'index.html'))) await buildDashboard({ quiet: true });
}

export class WebServer {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly output: () => string,
  ) {}

  static async start(): Promise<WebServer> {
    await ensureDashboardBuilt();
    const dir = await mkdtemp(join(tmpdir(), 'flt-web-'));
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        cliBin,
        'server',
        '--data-dir',
        join(dir, 'data'),
        '--listen',
        `127.0.0.1:${port}`,
        '--log-level',
        'warn',
      ],
      {
        env: { ...process.env, FLOTILLA_ADMIN_PASSWORD: ADMIN_PASSWORD, FLOTILLA_LOG_FORMAT: 'json' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    while (!out.includes('dashboard: ')) {
      if (child.exitCode !== null) throw new Error(`server exited:\n${out}`);
      if (Date.now() > deadline) throw new Error(`server did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return new WebServer(url, child, dir, () => out);
  }

  log(): string {
    return this.output();
  }

  /** The server's `--data-dir` (its SQLite database is `flotilla.db` there). */
  get dataDir(): string {
    return join(this.dir, 'data');
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (this.child.exitCode === null) this.child.kill('SIGKILL');
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A bearer-token API client for setting things up (and for checking what the API refuses). */
export class Api {
  constructor(
    readonly url: string,
    private readonly token: string | null,
  ) {}

  static async login(url: string, username: string, password: string): Promise<Api> {
    const res = await fetch(`${url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (!res.ok) throw new Error(`login ${username}: ${res.status} ${await res.text()}`);
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const tok = await fetch(`${url}/api/v1/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: JSON.stringify({ name: `web-e2e-${username}` }),
    });
    const body = (await tok.json()) as { secret: string };
    return new Api(url, body.secret);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  }

  async ok<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call<T>(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export class Browsing {
  private constructor(
    readonly browser: Browser,
    private readonly profile: string,
  ) {}

  static async launch(): Promise<Browsing> {
    // playwright gives every launch a new empty profile of its own (--user-data-dir); this dir
    // holds Chromium's downloads and crash dumps.
    const profile = await mkdtemp(join(tmpdir(), 'flt-chromium-'));
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      downloadsPath: profile,
    });
    return new Browsing(browser, profile);
  }

  async context(viewport = DESKTOP): Promise<BrowserContext> {
    return this.browser.newContext({ viewport, reducedMotion: 'reduce' });
  }

  async close(): Promise<void> {
    await this.browser.close();
    await rm(this.profile, { recursive: true, force: true });
  }
}

export async function signIn(page: Page, url: string, username: string, password: string): Promise<void> {
  await page.goto(url + '/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

const require = createRequire(import.meta.url);
let axeSource: string | null = null;

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Runs axe-core (WCAG 2 A/AA rules) on the page; returns the violations. */
export async function axe(page: Page): Promise<AxeViolation[]> {
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  const has = await page.evaluate(() => 'axe' in window);
  // Evaluated through the DevTools protocol: the page's CSP (script-src 'self') stays in force.
  if (!has) await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const w = window as unknown as {
      axe: { run: (ctx: Document, opts: unknown) => Promise<{ violations: AxeViolation[] }> };
    };
    const r = await w.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target })),
    }));
  });
}

export function describeViolations(v: AxeViolation[]): string {
  return v
    .map((x) => `${x.id} (${x.impact}): ${x.help} at ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`)
    .join('\n');
}

/** Saves `docs/screenshots/<name>-<desktop|phone>.png`. */
export async function screenshot(page: Page, name: string, width: 'desktop' | 'phone'): Promise<void> {
  await mkdir(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}-${width}.png`), fullPage: width === 'desktop' });
}

/** The CLI with its own config dir (logged in as admin by `loginCli`). */
export class Cli {
  constructor(
    readonly configDir: string,
    readonly keysDir: string,
  ) {}

  run(args: string[], input = ''): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: this.configDir },
      encoding: 'utf8',
      input,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  ok(args: string[], input = ''): string {
    const r = this.run(args, input);
    if (r.code !== 0) throw new Error(`flotilla ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    return r.stdout;
  }
}

/** A real agent process (`flotilla agent`) enrolling with `registrationKey`. */
export async function startAgent(
  url: string,
  registrationKey: string,
  dataDir: string,
  facts: Record<string, string>,
): Promise<ChildProcess> {
  await mkdir(join(dataDir, 'inventory.d'), { recursive: true });
  await writeFile(join(dataDir, 'registration.key'), registrationKey + '\n', { mode: 0o600 });
  const script = join(dataDir, 'inventory.d', 'custom-facts');
  await writeFile(
    script,
    `#!/bin/sh\n${Object.entries(facts)
      .map(([k, v]) => `echo '${k}=${v}'`)
      .join('\n')}\n`,
  );
  await chmod(script, 0o755);
  return spawn(
    process.execPath,
    [
      cliBin,
      'agent',
      '--server',
      url,
      '--data-dir',
      dataDir,
      '--registration-key-file',
      join(dataDir, 'registration.key'),
      '--inventory-dir',
      join(dataDir, 'inventory.d'),
      '--poll-interval',
      '2s',
      '--log-format',
      'json',
      '--log-level',
      'warn',
    ],
    { stdio: 'ignore' },
  );
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
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
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
