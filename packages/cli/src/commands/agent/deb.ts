import { resolve } from 'node:path';
import type { Command } from 'commander';
import { buildAgentDeb } from '../../bundle/build-deb.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

export function registerAgentDeb(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('deb')
    .description(
      'package an agent bundle (flotilla agent bundle) as a .deb with its systemd unit, with dpkg-deb',
    )
    .requiredOption('--bundle <dir>', 'the bundle directory')
    .option('--out <dir>', 'where the .deb is written', '.')
    .action(async (opts: { bundle: string; out: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const result = await buildAgentDeb({
        bundleDir: resolve(io.cwd, opts.bundle),
        outDir: resolve(io.cwd, opts.out),
      });
      ctx.out.result(result, () => ctx.out.line(`built ${result.file}`));
    });
  examples(cmd, [
    'flotilla agent bundle --out ./flotilla-agent --version 1.2.0',
    'flotilla agent deb --bundle ./flotilla-agent --out ./dist',
  ]);
}
