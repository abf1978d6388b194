/**
 * Folders of a package are layers (docs/architecture.md "Layers inside a package"): imports between the
 * folders of one package's src/ never form a cycle, so the folders have a bottom-to-top order and no
 * import runs back up it. A file directly in src/ (config.ts, context.ts, index.ts, ...) counts as a
 * folder of its own. A cycle that is too large to cut today is a named exception below, with its reason;
 * any other cycle, or an exception whose members change, fails this test.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { relativeImports, sourceFiles } from '../src/sources.js';

/** packages/testkit/dist/test → packages/ */
const PACKAGES = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Exception {
  readonly pkg: string;
  readonly name: string;
  readonly members: readonly string[];
  readonly reason: string;
}

const EXCEPTIONS: readonly Exception[] = [
  {
    pkg: 'server',
    name: 'server-request-core',
    members: ['audit', 'auth', 'context.ts', 'http', 'users'],
    reason:
      'context.ts holds the rate limiters of http/, which reads the context back; http/auth.ts resolves ' +
      'principals through auth/ and users/, and the auth/users/audit route files register through http/. ' +
      'Cutting it means splitting each of those folders into a service part (below http) and a routes part ' +
      '(above it).',
  },
];

/** The folder right under src/ that holds `file`, or the file's own name if it sits in src/. */
function folderOf(src: string, file: string): string {
  const rel = relative(src, file);
  const dir = dirname(rel);
  return dir === '.' ? rel : dir.split('/')[0]!;
}

/** Edges folder → folder, each with one example import. */
function folderGraph(src: string): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of sourceFiles(src)) {
    const from = folderOf(src, file);
    for (const spec of relativeImports(file)) {
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      const to = folderOf(src, target);
      if (to === from) continue;
      const out = graph.get(from) ?? new Map<string, string>();
      if (!out.has(to)) out.set(to, `${relative(src, file)} imports ${relative(src, target)}`);
      graph.set(from, out);
    }
  }
  return graph;
}

/** Strongly connected components with more than one member (Tarjan), each sorted. */
function cycles(graph: Map<string, Map<string, string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const packages = readdirSync(PACKAGES).filter((p) => existsSync(join(PACKAGES, p, 'src')));

for (const pkg of packages) {
  void test(`${pkg}: no import cycle between the folders of src/`, () => {
    const src = join(PACKAGES, pkg, 'src');
    const graph = folderGraph(src);
    const allowed = EXCEPTIONS.filter((e) => e.pkg === pkg).map((e) => [...e.members].sort().join(' '));
    const unexpected = cycles(graph).filter((c) => !allowed.includes(c.join(' ')));
    const explain = unexpected.flatMap((c) =>
      c.flatMap((from) =>
        [...(graph.get(from) ?? new Map<string, string>())]
          .filter(([to]) => c.includes(to))
          .map(([to, example]) => `${from} → ${to} (${example})`),
      ),
    );
    assert.deepEqual(explain, [], 'cut the cycle (move the shared type or function down a layer)');
  });
}

void test('every named exception is still a cycle (drop it from the table once it is cut)', () => {
  for (const e of EXCEPTIONS) {
    const found = cycles(folderGraph(join(PACKAGES, e.pkg, 'src'))).map((c) => c.join(' '));
    assert.ok(found.includes([...e.members].sort().join(' ')), `${e.name}: ${found.join('; ')}`);
  }
});

void test('a back-up import is caught: the checker sees a cycle in a two-folder graph', () => {
  const graph = new Map([
    ['a', new Map([['b', 'a/x.ts imports b/y.ts']])],
    ['b', new Map([['a', 'b/y.ts imports a/z.ts']])],
  ]);
  assert.deepEqual(cycles(graph), [['a', 'b']]);
});
