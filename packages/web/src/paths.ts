/** Where the dashboard's sources and its built bundle live (resolved from this compiled file). */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** packages/web (this file is compiled to packages/web/dist/src/). */
export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The browser app's sources: index.html and src/. */
export const appSourceDir = join(packageDir, 'app');
/** The built single-page app the server serves at `/`. */
export const dashboardDir = join(packageDir, 'dist', 'app');
/** The build's report: file sizes and the initial JavaScript's gzipped size. */
export const buildReportFile = join(dashboardDir, 'build-report.json');
/** Initial JavaScript budget (issue 18): at most 300 KB gzipped. */
export const INITIAL_JS_BUDGET_BYTES = 300 * 1024;
