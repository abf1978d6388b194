/**
 * Builds the dashboard with Vite into dist/app and measures it: the JavaScript the browser loads
 * before the first page renders (the entry chunk and its static imports, not lazy chunks) must stay
 * within INITIAL_JS_BUDGET_BYTES gzipped, or the build fails. Run by scripts/ensure.mjs when the
 * sources are newer than the bundle (`npm start`, `npm test`), or by hand: `npm run build -w packages/web`.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { appSourceDir, buildReportFile, dashboardDir, INITIAL_JS_BUDGET_BYTES } from './paths.js';

export interface BuildReport {
  builtAt: string;
  /** Files of the entry chunk and its static imports, as index.html loads them. */
  initialJs: { file: string; bytes: number; gzipBytes: number }[];
  initialJsGzipBytes: number;
  budgetGzipBytes: number;
  totalFiles: number;
}

export async function buildDashboard(opts: { quiet?: boolean } = {}): Promise<BuildReport> {
  const { build } = await import('vite');
  const react = (await import('@vitejs/plugin-react')).default;
  await build({
    root: appSourceDir,
    base: '/',
    logLevel: opts.quiet ? 'error' : 'warn',
    configFile: false,
    plugins: [react()],
    build: {
      outDir: dashboardDir,
      emptyOutDir: true,
      manifest: 'manifest.json',
      sourcemap: false,
      target: 'es2022',
      chunkSizeWarningLimit: 800,
    },
  });
  const report = await measure();
  await writeFile(buildReportFile, JSON.stringify(report, null, 2) + '\n');
  return report;
}

interface ManifestChunk {
  file: string;
  isEntry?: boolean;
  imports?: string[];
}

/** The entry chunk and everything it imports statically: what the first page load executes. */
export async function measure(): Promise<BuildReport> {
  const manifest = JSON.parse(await readFile(join(dashboardDir, 'manifest.json'), 'utf8')) as Record<
    string,
    ManifestChunk
  >;
  const seen = new Set<string>();
  const visit = (key: string) => {
    if (seen.has(key)) return;
    seen.add(key);
    for (const dep of manifest[key]?.imports ?? []) visit(dep);
  };
  for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry) visit(key);
  const initialJs = [];
  for (const key of seen) {
    const file = manifest[key]?.file;
    if (!file?.endsWith('.js')) continue;
    const body = await readFile(join(dashboardDir, file));
    initialJs.push({ file, bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length });
  }
  const all = await listFiles(dashboardDir);
  return {
    builtAt: new Date().toISOString(),
    initialJs,
    initialJsGzipBytes: initialJs.reduce((n, f) => n + f.gzipBytes, 0),
    budgetGzipBytes: INITIAL_JS_BUDGET_BYTES,
    totalFiles: all.length,
  };
}

async function listFiles(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await listFiles(p, out);
    else out.push(relative(dashboardDir, p));
  }
  return out;
}

/** Newest modification time under the app's sources (and this package's lockfile entry). */
export async function newestSourceMtime(dir = appSourceDir): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, await newestSourceMtime(p));
    else newest = Math.max(newest, (await stat(p)).mtimeMs);
  }
  return newest;
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  const report = await buildDashboard();
  const line = `web: initial JavaScript ${kb(report.initialJsGzipBytes)} gzipped (budget ${kb(report.budgetGzipBytes)}), ${report.totalFiles} files in ${relative(process.cwd(), dashboardDir) || '.'}`;
  if (report.initialJsGzipBytes > report.budgetGzipBytes) {
    console.error(`${line}\nweb: the initial JavaScript is over budget`);
    process.exit(1);
  }
  console.error(line);
}
