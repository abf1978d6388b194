/**
 * The self-contained agent bundle (docs/agent-lifecycle.md "Release tree"): the running Node binary,
 * the agent's JavaScript bundled by esbuild into one file, and the native modules it loads.
 *
 * ```
 * bin/node  bin/flotilla-agent  bin/flotilla-loader-launch
 * lib/flotilla-agent.mjs  lib/chunk-*.mjs (code loaded when first used)
 * lib/rebuild-worker.mjs  lib/esm-task.cjs (the delta rebuild worker threads)
 * lib/node_modules/{better-sqlite3,bindings,file-uri-to-path,zstd-napi,piscina}
 * share/flotilla-agent/   systemd units, install script
 * flotilla-agent.json     { version, node, platform, arch }
 * ```
 */
import { chmod, copyFile, cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as EsbuildModule from 'esbuild';
import { FlotillaError } from '@flotilla/protocol';
import { AGENT_LAUNCHER, AGENT_WRAPPER, installScript, systemdUnits } from './service-files.js';

/**
 * The modules shipped as files rather than bundled, and which of their files the bundle needs: the
 * native modules, and piscina, whose worker threads load its own `dist/worker.js` by path.
 */
const NATIVE: Record<string, readonly string[]> = {
  'better-sqlite3': ['package.json', 'lib', 'build/Release/better_sqlite3.node', 'LICENSE'],
  bindings: ['package.json', 'bindings.js', 'LICENSE.md'],
  'file-uri-to-path': ['package.json', 'index.js', 'LICENSE'],
  'zstd-napi': ['package.json', 'binding.js', 'dist', 'build/Release/binding.node', 'LICENSE', 'NOTICE'],
  piscina: ['package.json', 'dist', 'LICENSE'],
};

type Esbuild = typeof EsbuildModule;

export interface BundleOptions {
  outDir: string;
  version: string;
  /** The Node binary to ship (default: the one running, `process.execPath`). */
  nodeBinary?: string;
}

export interface BundleResult {
  dir: string;
  version: string;
  jsBytes: number;
}

export async function buildAgentBundle(options: BundleOptions): Promise<BundleResult> {
  const { outDir, version } = options;
  const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent-bin.js');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(join(outDir, 'bin'), { recursive: true });
  await mkdir(join(outDir, 'lib', 'node_modules'), { recursive: true });
  let esbuild: Esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new FlotillaError(
      'FLT_CONFIG_INVALID',
      'esbuild is not installed: run npm install in the Flotilla checkout',
      {
        cause: e,
      },
    );
  }
  const out = join(outDir, 'lib', 'flotilla-agent.mjs');
  const require = createRequire(entry);
  // The delta rebuild worker (rebuild-pool.ts) and node-kit's WorkerPool entry (esm-task.cjs): each
  // worker thread loads them by path, next to the chunk that starts the pool.
  const agentSrc = dirname(require.resolve('@flotilla/agent'));
  const nodeKitSrc = dirname(require.resolve('@flotilla/node-kit'));
  await esbuild.build({
    entryPoints: {
      'flotilla-agent': entry,
      'rebuild-worker': join(agentSrc, 'fetch', 'rebuild-worker.js'),
    },
    outdir: join(outDir, 'lib'),
    // What the agent imports with import() (the update pipeline, TUF, the runtimes of other kinds,
    // pino-pretty) goes into chunks of its own, read only when first used: an idle agent never
    // parses or keeps them (docs/agent-lifecycle.md "Footprint").
    splitting: true,
    chunkNames: 'chunk-[hash]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${process.versions.node.split('.')[0] ?? '20'}`,
    // ssh2 (dockerode's ssh:// transport, unused: the agent talks to a unix socket or tcp://) loads
    // two optional native addons inside try/catch; left out, it runs without them.
    external: [...Object.keys(NATIVE), 'bufferutil', 'utf-8-validate', 'cpu-features', '*.node'],
    define: { 'process.env.FLOTILLA_BUNDLE_VERSION': JSON.stringify(version) },
    // CommonJS dependencies inside an ES module still need `require` for Node's built-ins, and
    // some read `__dirname` / `__filename` (those of the bundle file).
    banner: {
      js:
        "import { createRequire as __flotillaRequire } from 'node:module';\n" +
        "import { fileURLToPath as __flotillaPath } from 'node:url';\n" +
        'const require = __flotillaRequire(import.meta.url);\n' +
        'const __filename = __flotillaPath(import.meta.url);\n' +
        "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
    },
    logLevel: 'error',
    legalComments: 'none',
    // V8 keeps every loaded module's source text on its heap (for lazy compilation): without the
    // whitespace and with shorter syntax that is less memory (docs/agent-lifecycle.md
    // "Footprint"). Identifiers stay, so class and function names in logs and stack traces do.
    minifyWhitespace: true,
    minifySyntax: true,
  });
  await copyFile(
    join(nodeKitSrc, '..', '..', 'src', 'workers', 'esm-task.cjs'),
    join(outDir, 'lib', 'esm-task.cjs'),
  );
  // Libraries loaded by bin/node, not scripts: no hashbang, not executable.
  for (const name of await readdir(join(outDir, 'lib'))) {
    if (!name.endsWith('.mjs')) continue;
    const file = join(outDir, 'lib', name);
    const js = await readFile(file, 'utf8');
    if (js.startsWith('#!')) await writeFile(file, js.slice(js.indexOf('\n') + 1));
    await chmod(file, 0o644);
  }
  for (const [name, files] of Object.entries(NATIVE)) {
    const from = packageDir(require, name);
    for (const file of files) {
      const target = join(outDir, 'lib', 'node_modules', name, file);
      await mkdir(dirname(target), { recursive: true });
      await cp(join(from, file), target, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT' || file.startsWith('build') || file === 'package.json') throw e;
      });
      // Shared objects are mapped, not executed.
      if (file.endsWith('.node')) await chmod(target, 0o644);
    }
  }
  await copyFile(options.nodeBinary ?? process.execPath, join(outDir, 'bin', 'node'));
  await chmod(join(outDir, 'bin', 'node'), 0o755);
  await writeExecutable(join(outDir, 'bin', 'flotilla-agent'), AGENT_WRAPPER);
  await writeExecutable(join(outDir, 'bin', 'flotilla-loader-launch'), AGENT_LAUNCHER);
  const share = join(outDir, 'share', 'flotilla-agent');
  await mkdir(share, { recursive: true });
  for (const [name, text] of Object.entries(systemdUnits('/opt/flotilla-agent')))
    await writeFile(join(share, name), text);
  await writeExecutable(join(share, 'install.sh'), installScript());
  await writeFile(
    join(outDir, 'flotilla-agent.json'),
    JSON.stringify({ version, node: process.version, platform, arch }, null, 2) + '\n',
  );
  return { dir: outDir, version, jsBytes: (await readFile(out)).length };
}

async function writeExecutable(path: string, text: string): Promise<void> {
  await writeFile(path, text);
  await chmod(path, 0o755);
}

/** The directory of package `name` (piscina's `exports` do not include its package.json). */
function packageDir(require: NodeJS.Require, name: string): string {
  const paths = [resolveBase(require, name)];
  try {
    return dirname(require.resolve(`${name}/package.json`, { paths }));
  } catch {
    let dir = dirname(require.resolve(name, { paths }));
    while (!dir.endsWith(`/node_modules/${name}`) && dir !== dirname(dir)) dir = dirname(dir);
    return dir;
  }
}

/** Native modules are dependencies of @flotilla/agent (better-sqlite3, zstd-napi) or of those. */
function resolveBase(require: NodeJS.Require, name: string): string {
  for (const via of ['@flotilla/agent/package.json', 'better-sqlite3/package.json']) {
    try {
      const base = dirname(require.resolve(via));
      const from = createRequire(join(base, 'x.js'));
      try {
        from.resolve(`${name}/package.json`);
      } catch {
        from.resolve(name);
      }
      return base;
    } catch {
      // try the next
    }
  }
  return process.cwd();
}
