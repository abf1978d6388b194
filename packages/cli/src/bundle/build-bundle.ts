/**
 * The self-contained agent bundle (docs/agent-lifecycle.md "Release tree"): the running Node binary,
 * the agent's JavaScript bundled by esbuild into one file, and the native modules it loads.
 *
 * ```
 * bin/node  bin/flotilla-agent  bin/flotilla-loader-launch
 * lib/flotilla-agent.mjs  lib/node_modules/{better-sqlite3,bindings,file-uri-to-path,zstd-napi}
 * share/flotilla-agent/   systemd units, install script
 * flotilla-agent.json     { version, node, platform, arch }
 * ```
 */
import { chmod, copyFile, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as EsbuildModule from 'esbuild';
import { FlotillaError } from '@flotilla/protocol';
import { AGENT_LAUNCHER, AGENT_WRAPPER, installScript, systemdUnits } from './service-files.js';

/** The native modules the agent loads, and which of their files the bundle needs. */
const NATIVE: Record<string, readonly string[]> = {
  'better-sqlite3': ['package.json', 'lib', 'build/Release/better_sqlite3.node', 'LICENSE'],
  bindings: ['package.json', 'bindings.js', 'LICENSE.md'],
  'file-uri-to-path': ['package.json', 'index.js', 'LICENSE'],
  'zstd-napi': ['package.json', 'binding.js', 'dist', 'build/Release/binding.node', 'LICENSE', 'NOTICE'],
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
  await esbuild.build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${process.versions.node.split('.')[0] ?? '20'}`,
    external: [...Object.keys(NATIVE), 'bufferutil', 'utf-8-validate'],
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
  });
  // A library loaded by bin/node, not a script: no hashbang, not executable.
  const js = await readFile(out, 'utf8');
  await writeFile(out, js.startsWith('#!') ? js.slice(js.indexOf('\n') + 1) : js, { mode: 0o644 });
  await chmod(out, 0o644);
  const require = createRequire(entry);
  for (const [name, files] of Object.entries(NATIVE)) {
    const from = dirname(require.resolve(`${name}/package.json`, { paths: [resolveBase(require, name)] }));
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

/** Native modules are dependencies of @flotilla/agent (better-sqlite3, zstd-napi) or of those. */
function resolveBase(require: NodeJS.Require, name: string): string {
  for (const via of ['@flotilla/agent/package.json', 'better-sqlite3/package.json']) {
    try {
      const base = dirname(require.resolve(via));
      createRequire(join(base, 'x.js')).resolve(`${name}/package.json`);
      return base;
    } catch {
      // try the next
    }
  }
  return process.cwd();
}
