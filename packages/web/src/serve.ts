/**
 * Serving the built dashboard, independent of any HTTP framework (the CLI adapts it to the server's
 * extension point, so the server never depends on this package or on React). Files are read once
 * at start (the bundle is small) and kept with a gzipped copy and a strong ETag.
 *
 * - `/assets/*` are content-hashed by the build: cached for a year, `immutable`.
 * - Everything else (index.html, the icon) is revalidated on every load (`no-cache` + ETag), so a
 *   new server version is picked up at the next page load.
 * - A path that is not a file and not reserved for the server (API, TUF, docs, metrics…) is a
 *   client-side route: it gets index.html (the SPA fallback). Reserved paths are left to the
 *   server, which answers its usual 404 error envelope.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface DashboardResponse {
  status: 200 | 304;
  headers: Record<string, string>;
  body: Buffer | null;
}

interface StoredFile {
  body: Buffer;
  gzip: Buffer | null;
  etag: string;
  type: string;
  immutable: boolean;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.txt']);
/** Build bookkeeping that is not for browsers. */
const PRIVATE_FILES = new Set(['manifest.json', 'build-report.json']);

/** Paths the server owns: never answered with the SPA, so API clients keep their JSON 404s. */
export const RESERVED_PREFIXES = [
  '/api/',
  '/tuf/',
  '/docs',
  '/openapi.json',
  '/metrics',
  '/healthz',
  '/readyz',
  '/downloads/',
  '/install.sh',
];

/**
 * The page may load its own scripts and styles only, talk to its own origin only, and be framed
 * by nobody. Inline styles are allowed for style attributes set by the chart library (no scripts).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export class DashboardFiles {
  private constructor(private readonly files: Map<string, StoredFile>) {}

  /** Reads the built dashboard; throws when `dir` has no index.html (not built). */
  static async load(dir: string): Promise<DashboardFiles> {
    const files = new Map<string, StoredFile>();
    for (const path of await walk(dir)) {
      const rel = relative(dir, path).split(sep).join('/');
      if (PRIVATE_FILES.has(rel)) continue;
      const body = await readFile(path);
      const ext = extname(rel);
      files.set('/' + rel, {
        body,
        gzip: COMPRESSIBLE.has(ext) && body.length > 512 ? gzipSync(body) : null,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
        type: TYPES[ext] ?? 'application/octet-stream',
        immutable: rel.startsWith('assets/'),
      });
    }
    if (!files.has('/index.html')) throw new Error(`no index.html in ${dir}: the dashboard is not built`);
    return new DashboardFiles(files);
  }

  /**
   * The answer for a GET/HEAD of `pathname`, or null when the path belongs to the server (reserved)
   * or looks like a missing file (`/assets/x.js`, `/foo.png`): the caller answers its own 404.
   */
  respond(
    pathname: string,
    req: { ifNoneMatch?: string | undefined; acceptEncoding?: string | undefined },
  ): DashboardResponse | null {
    if (RESERVED_PREFIXES.some((p) => pathname === p.replace(/\/$/, '') || pathname.startsWith(p)))
      return null;
    let file = this.files.get(pathname === '/' ? '/index.html' : pathname);
    if (!file) {
      // A client-side route (not under /assets/, not a file type we serve; `/releases/web/1.1.0`
      // is a route): the app's shell.
      if (pathname.startsWith('/assets/') || extname(pathname).toLowerCase() in TYPES) return null;
      file = this.files.get('/index.html');
      if (!file) return null;
    }
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      'content-type': file.type,
      etag: file.etag,
      'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'accept-encoding',
    };
    if (file.type.startsWith('text/html')) headers['content-security-policy'] = CONTENT_SECURITY_POLICY;
    if (req.ifNoneMatch !== undefined && req.ifNoneMatch.split(/\s*,\s*/).includes(file.etag)) {
      return { status: 304, headers, body: null };
    }
    if (file.gzip && /\bgzip\b/.test(req.acceptEncoding ?? '')) {
      headers['content-encoding'] = 'gzip';
      return { status: 200, headers, body: file.gzip };
    }
    return { status: 200, headers, body: file.body };
  }
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await walk(p, out);
    else out.push(p);
  }
  return out;
}
