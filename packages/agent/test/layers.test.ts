/**
 * The agent's folders are layers (docs/architecture.md "Agent"): a file imports only from its own
 * folder or from a lower layer, so no import runs back up and no two folders import each other.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { relativeImports, sourceFiles } from '@flotilla/testkit';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Bottom (0) to top; folders on one rank do not import each other. `.` is the package root's files. */
const LAYERS: Record<string, number> = {
  model: 0,
  util: 0,
  config: 0, // config.ts and config/: the agent's settings, read by every layer
  state: 1,
  secrets: 1,
  client: 2,
  cache: 2,
  loader: 2, // the loader's layout, probe and health marker: files under the data dir
  runtimes: 2,
  tuf: 2,
  sync: 3,
  fetch: 3,
  apply: 4,
  update: 5,
  control: 6,
  inventory: 6,
  '.': 7,
};

function layerOf(file: string): string {
  const rel = relative(SRC, file);
  if (rel === 'config.ts') return 'config';
  const dir = dirname(rel);
  return dir === '.' ? '.' : dir.split('/')[0]!;
}

void test('every folder of the agent has a layer', () => {
  const folders = new Set(sourceFiles(SRC).map(layerOf));
  const missing = [...folders].filter((f) => LAYERS[f] === undefined);
  assert.deepEqual(missing, [], 'add the new folder to LAYERS here and to docs/architecture.md');
});

void test('no import runs back up a layer or sideways between folders of one layer', () => {
  const wrong: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = layerOf(file);
    for (const spec of relativeImports(file)) {
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      const to = layerOf(target);
      if (to === from) continue;
      if ((LAYERS[to] ?? Infinity) >= (LAYERS[from] ?? -1))
        wrong.push(`${relative(SRC, file)} (${from}) imports ${relative(SRC, target)} (${to})`);
    }
  }
  assert.deepEqual(wrong, []);
});

void test("tuf-js is used through its public API: one deep import (the fetcher contract's DownloadHTTPError), no private fields", () => {
  const deep: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    if (/from 'tuf-js\/dist\//.test(text)) deep.push(relative(SRC, file));
    assert.doesNotMatch(text, /trustedSet/, `${relative(SRC, file)} reaches into the Updater's trusted set`);
  }
  assert.deepEqual(deep, ['tuf/fetcher.ts']);
});
