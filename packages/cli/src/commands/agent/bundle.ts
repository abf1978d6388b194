import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { arch } from 'node:process';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { agentVersion } from '../../agent-version.js';
import { buildAgentBundle } from '../../bundle/build-bundle.js';
import { installScript } from '../../bundle/service-files.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { checkVersion } from '../../push/release-ref.js';
import { runTool } from '../../bundle/exec.js';

interface BundleOptions {
  out: string;
  version?: string;
  downloads?: string;
}

export function registerAgentBundle(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('bundle')
    .description(
      'build the self-contained agent bundle: its own Node binary, the bundled JavaScript, native modules, systemd unit, install script',
    )
    .requiredOption('--out <dir>', 'the directory to build the release tree in (replaced)')
    .option('--version <version>', 'the version the bundle reports (default: this checkout’s)')
    .option(
      '--downloads <dir>',
      'also write what the server serves (its agentDownloadsDir): flotilla-agent-linux-<arch>.tar.gz, its .sha256 and install.sh',
    )
    .action(async (opts: BundleOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const version = checkVersion(opts.version ?? agentVersion());
      const out = resolve(io.cwd, opts.out);
      const result = await buildAgentBundle({ outDir: out, version });
      let tarball: string | null = null;
      if (opts.downloads !== undefined) {
        const downloads = resolve(io.cwd, opts.downloads);
        await mkdir(downloads, { recursive: true });
        tarball = join(downloads, `flotilla-agent-linux-${arch}.tar.gz`);
        await runTool('tar', ['-czf', `${tarball}.tmp`, '-C', out, '.']);
        await rename(`${tarball}.tmp`, tarball);
        const sum = createHash('sha256')
          .update(await readFile(tarball))
          .digest('hex');
        await writeFile(`${tarball}.sha256`, `${sum}  ${basename(tarball)}\n`);
        await writeFile(join(downloads, 'install.sh'), installScript(), { mode: 0o755 });
      }
      ctx.out.result({ ...result, arch, tarball }, () => {
        ctx.out.line(`built flotilla-agent ${version} in ${out}`);
        if (tarball) ctx.out.line(`packed ${tarball}`);
      });
    });
  examples(cmd, [
    'flotilla agent bundle --out ./flotilla-agent --downloads /var/lib/flotilla/agent-downloads',
  ]);
}
