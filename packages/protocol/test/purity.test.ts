/**
 * The contract must load in a browser (the web dashboard imports it): no Node built-in, no Node-only
 * package, no Node globals. Node-side code belongs in @flotilla/node-kit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/purity.test.js → the package's src/ (the TypeScript sources, not the build output).
const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** Packages the contract may import: pure JavaScript that runs in a browser. */
const BROWSER_SAFE = ['@sinclair/typebox'];

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, m.replace(/^node:/, '')]));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module specifier of static imports, re-exports and dynamic imports in `text`. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of text.matchAll(pattern)) found.push(m[1]!);
  return found;
}

/** Why `spec` may not be imported by the contract, or null when it may. */
function impurity(spec: string): string | null {
  if (spec.startsWith('./') || spec.startsWith('../')) return null;
  if (spec.startsWith('node:') || BUILTINS.has(spec) || BUILTINS.has(spec.split('/')[0]!))
    return 'a Node built-in';
  const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
  return BROWSER_SAFE.includes(pkg) ? null : 'not on the browser-safe list (a Node-only package?)';
}

void test('the checker refuses Node built-ins and Node-only packages, and accepts the contract', () => {
  assert.equal(impurity('node:fs'), 'a Node built-in');
  assert.equal(impurity('crypto'), 'a Node built-in');
  assert.equal(impurity('fs/promises'), 'a Node built-in');
  assert.match(impurity('@tufjs/models') ?? '', /browser-safe/);
  assert.match(impurity('@flotilla/node-kit') ?? '', /browser-safe/);
  assert.equal(impurity('@sinclair/typebox/value'), null);
  assert.equal(impurity('./errors.js'), null);
  assert.deepEqual(specifiers(`import { x } from 'node:fs';\nexport { y } from "./y.js";\nimport 'z';`), [
    'node:fs',
    './y.js',
    'z',
  ]);
});

void test('no file in packages/protocol/src imports a Node module or uses a Node global', () => {
  const files = sourceFiles(SRC);
  assert.ok(files.length > 5, `found the sources in ${SRC}`);
  const problems: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const where = relative(SRC, file);
    for (const spec of specifiers(text)) {
      const why = impurity(spec);
      if (why !== null) problems.push(`${where}: imports ${spec} (${why})`);
    }
    // Comments may name them; code may not.
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const m of code.matchAll(/(?<![.\w'"])(Buffer|process|__dirname|NodeJS)\s*[.([]/g))
      problems.push(`${where}: uses the Node global ${m[1]}`);
  }
  assert.deepEqual(problems, []);
});
