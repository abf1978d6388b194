#!/usr/bin/env node
// Runs every compiled test file with node:test. Node 20's `--test` does not expand globs, so the
// files are found here. Unit tests run first, then e2e (real processes), serially per file group.
// Usage: node scripts/run-tests.mjs [substring-filter ...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);

function find(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    if (name === 'node_modules') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// bench/dist: the bench's own tests (no benchmark runs there; they need nothing the suite lacks).
const dists = [
  ...readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'dist', 'test')),
  join(root, 'bench', 'dist'),
  join(root, 'test', 'e2e', 'dist'),
];
const files = dists
  .flatMap((d) => find(d))
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const res = spawnSync(
  process.execPath,
  // --test-force-exit: a file whose tests all finished exits even if a stray handle (a socket, a
  // timer) would keep it alive; --test-timeout bounds any single test (no test asserts timings).
  [
    '--test',
    '--test-concurrency=2',
    '--test-force-exit',
    '--test-timeout=600000',
    '--test-reporter=spec',
    ...files,
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, FLOTILLA_REPO_ROOT: root } },
);
process.exit(res.status ?? 1);
