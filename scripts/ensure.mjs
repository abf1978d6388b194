#!/usr/bin/env node
// First-use bootstrap for the README's two commands: install dependencies when node_modules is
// missing or older than package-lock.json, then build every package with `tsc -b` (incremental).
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  console.error('flotilla: installing dependencies (npm ci)…');
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
}
run(join(root, 'node_modules', '.bin', 'tsc'), ['-b']);

// The web dashboard (packages/web): Vite builds it into packages/web/dist/app when its sources or
// the lockfile are newer than the last build; the build fails if the initial JavaScript is over
// its gzipped budget (docs/web.md).
const web = join(root, 'packages', 'web');
const { newestSourceMtime } = await import(pathToFileURL(join(web, 'dist', 'src', 'build.js')).href);
const report = join(web, 'dist', 'app', 'build-report.json');
const builtAt = existsSync(report) ? statSync(report).mtimeMs : 0;
if (builtAt < Math.max(await newestSourceMtime(), statSync(lock).mtimeMs)) {
  console.error('flotilla: building the web dashboard…');
  run(process.execPath, [join(web, 'dist', 'src', 'build.js')]);
}
