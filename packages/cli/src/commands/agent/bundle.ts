import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { arch } from 'node:process';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { agentVersion } from '../../agent-version.js';
import { buildAgentBundle } from '../../bundle/build-bundle.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { checkVersion } from '../../push/release-ref.js';
import { runTool } from '../../bundle/exec.js';

interface BundleOptions {
  out: string;
  version?: string;
  tarball?: string;
}

export function registerAgentBundle(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('bundle')
    .description(
      'build the self-contained agent bundle: its own Node binary, the bundled JavaScript, native modules, systemd unit, install script',
    )
    .requiredOption('--out <dir>', 'the directory to build the release tree in (replaced)')
    .option('--version <version>', 'the version the bundle reports (default: this checkout’s)')
    .option('--tarball <file>', 'also pack the tree as a .tar.gz, with a .sha256 file next to it')
    .action(async (opts: BundleOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const version = checkVersion(opts.version ?? agentVersion());
      const out = resolve(io.cwd, opts.out);
      const result = await buildAgentBundle({ outDir: out, version });
      let tarball: string | null = null;
      if (opts.tarball !== undefined) {
        tarball = resolve(io.cwd, opts.tarball);
        await runTool('tar', ['-czf', tarball, '-C', out, '.']);
        const sum = createHash('sha256').update(await readFile(tarball)).digest('hex');
        await writeFile(`${tarball}.sha256`, `${sum}  ${basename(tarball)}\n`);
      }
      ctx.out.result({ ...result, arch, tarball }, () => {
        ctx.out.line(`built flotilla-agent ${version} in ${out}`);
        if (tarball) ctx.out.line(`packed ${tarball}`);
      });
    });
  examples(cmd, [
    'flotilla agent bundle --out ./flotilla-agent --tarball ./downloads/flotilla-agent-linux-x64.tar.gz',
  ]);
}
